"""Convert a CAT-Seg checkpoint as released by its authors to mmovss's layout.

Thin wrapper of :mod:`mmovss.converters.catseg_official`::

    python tools/model_converters/catseg_official_to_mmovss.py model_base.pth catseg_vit-b16.pth
    python tools/test.py configs/catseg/catseg_vit-b16_official_coco-stuff171.py \
        catseg_vit-b16.pth --benchmark ade20k_150
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters import catseg_official  # noqa: E402
from mmovss.io import check_planned_outputs  # noqa: E402
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (model_base.pth / model_large.pth)')
    parser.add_argument('dst', help='output checkpoint (mmovss keys)')
    args = parser.parse_args(argv)
    check_planned_outputs([args.dst], [args.src], flag='dst')
    # weights_only loading (CRC-checked): a crafted pickle cannot run code.
    state = catseg_official.convert(load_checkpoint_safely(args.src))
    torch.save(dict(state_dict=state, meta=dict(converted_from=catseg_official.FORMAT)),
               args.dst)
    print(f'saved {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
