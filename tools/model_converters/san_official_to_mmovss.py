"""Convert a SAN checkpoint as released by its authors to mmovss's layout.

Thin wrapper of :mod:`mmovss.converters.san_official` (every official key is
mapped or dropped with a stated reason; unknown or missing keys are refused)::

    python tools/model_converters/san_official_to_mmovss.py san_vit_b_16.pth san_vit-b16.pth
    python tools/test.py configs/san/san-official_vit-b16_60k_coco-stuff171-640x640.py \\
        san_vit-b16.pth --benchmark ade20k_150

(``tools/test.py`` and the inferencer also take the released file itself, or
the model name ``san_vit-b16``, and convert it once.)
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters import san_official  # noqa: E402
from mmovss.io import check_planned_outputs  # noqa: E402
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='released checkpoint (san_vit_b_16.pth / '
                        'san_vit_large_14.pth)')
    parser.add_argument('dst', help='output checkpoint (mmovss keys)')
    args = parser.parse_args(argv)
    check_planned_outputs([args.dst], [args.src], flag='dst')
    # weights_only loading (CRC-checked): a crafted pickle cannot run code.
    state = san_official.convert(load_checkpoint_safely(args.src))
    torch.save(dict(state_dict=state, meta=dict(converted_from=san_official.FORMAT)),
               args.dst)
    print(f'saved {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
