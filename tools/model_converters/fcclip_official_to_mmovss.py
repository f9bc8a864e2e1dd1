#!/usr/bin/env python
"""Converts an official FC-CLIP checkpoint (github.com/bytedance/fc-clip) to mmovss.

    python tools/model_converters/fcclip_official_to_mmovss.py fcclip_cocopan.pth out.pth

A thin wrapper of :mod:`mmovss.converters.fcclip_official`; load the result with
``configs/fcclip/fcclip_convnext-l_official_coco-panoptic.py``.
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.common import ConversionError  # noqa: E402
from mmovss.converters.fcclip_official import FORMAT, convert, matches  # noqa: E402
from mmovss.io import check_planned_outputs  # noqa: E402
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('src', help='official checkpoint (.pth, detectron2 {"model": ...})')
    p.add_argument('dst', help='output mmovss checkpoint')
    args = p.parse_args(argv)
    check_planned_outputs([args.dst], [args.src], flag='dst')
    # weights_only loading (CRC-checked): a crafted pickle cannot run code
    checkpoint = load_checkpoint_safely(args.src)
    if not matches(checkpoint):
        sys.exit(f'{args.src} is not an official FC-CLIP checkpoint (no void_embedding / '
                 f'sem_seg_head.predictor._mask_pooling_proj / backbone.clip_model keys).')
    try:
        state = convert(checkpoint)
    except ConversionError as e:
        sys.exit(f'{args.src}: {e}')
    torch.save({'state_dict': state, 'meta': {'converted_from': FORMAT}}, args.dst)
    print(f'{len(state)} keys -> {args.dst}')


if __name__ == '__main__':
    main()
