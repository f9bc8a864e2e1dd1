"""Convert an OVSeg checkpoint as released by its authors to mmovss keys.

Thin wrapper of :mod:`mmovss.converters.ovseg_official` (every key mapped or
dropped with its reason; unknown or missing keys are refused)::

    python tools/model_converters/ovseg_official_to_mmovss.py \
        ovseg_swinbase_vitL14_ft_mpt.pth ovseg_swinb_vitl14.pth

then ``tools/test.py configs/ovseg/ovseg-official_*.py ovseg_swinb_vitl14.pth
--benchmark KEY`` (the config of the same backbone; ``--benchmark`` sets the
released per-benchmark ensemble weight).
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.common import unwrap_state_dict  # noqa: E402
from mmovss.converters.ovseg_official import convert, official_backbone  # noqa: E402
from mmovss.io import check_planned_outputs  # noqa: E402
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official checkpoint (ovseg_*.pth / .pt)')
    parser.add_argument('dst', help='output checkpoint (mmovss keys)')
    args = parser.parse_args(argv)
    check_planned_outputs([args.dst], [args.src], flag='dst')
    # weights_only loading (CRC-checked): a crafted pickle cannot run code.
    ckpt = load_checkpoint_safely(args.src)
    state = convert(ckpt)
    backbone = official_backbone(unwrap_state_dict(ckpt))
    meta = dict(source_format='ovseg_official', source=osp.basename(args.src),
                backbone=backbone)
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    print(f'saved {len(state)} tensors ({backbone} backbone) to {args.dst}')


if __name__ == '__main__':
    main()
