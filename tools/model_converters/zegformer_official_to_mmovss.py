"""Convert a ZegFormer checkpoint as released by its authors to mmovss keys.

Thin wrapper of :mod:`mmovss.converters.zegformer_official` (every key mapped
or dropped with its reason; unknown or missing keys are refused)::

    python tools/model_converters/zegformer_official_to_mmovss.py \
        zegformer_R101_bs32_60k_vit16_coco-stuff.pth zegformer_r101_coco.pth

then ``tools/test.py configs/zegformer/zegformer-official_*.py zegformer_r101_coco.pth``.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.zegformer_official import (  # noqa: E402
    convert,
    official_temperature,
)
from mmovss.io import check_planned_outputs  # noqa: E402
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (zegformer_*.pth)')
    parser.add_argument('dst', help='output checkpoint (mmovss keys)')
    parser.add_argument('--clip', default=None,
                        help="OpenAI CLIP ViT-B/16 weights (state dict, e.g. open_clip's "
                             "'openai' ViT-B-16 file) to fill the CLIP towers, so that the "
                             'official configs load the result strictly')
    args = parser.parse_args(argv)
    check_planned_outputs([args.dst], [args.src], flag='dst')
    # weights_only loading (CRC-checked): a crafted pickle cannot run code.
    ckpt = load_checkpoint_safely(args.src)
    clip = None
    if args.clip:
        clip = load_checkpoint_safely(args.clip)
    state = convert(ckpt, clip=clip)
    meta = dict(source_format='zegformer_official', source=osp.basename(args.src),
                temperature=official_temperature(ckpt))
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    print(f'saved {len(state)} tensors to {args.dst} (segment temperature '
          f'{meta["temperature"]:.4g})')


if __name__ == '__main__':
    main()
