"""COCO-Stuff 164k: stuffthingmaps (182 ids) -> 171 train ids.

Reads ``<root>/annotations/{train2017,val2017}/*.png`` (the official
``stuffthingmaps_trainval2017.zip``: value = COCO id - 1, 255 = unlabelled)
and writes ``<out-dir>/annotations/<split>/<name>_labelTrainIds.png`` (0-170,
255), the mmseg layout read by ``configs/_base_/datasets/coco_stuff171.py``.

Example::

    python tools/dataset_converters/coco_stuff.py data/coco_stuff164k
"""
import argparse

import numpy as np
from PIL import Image

from mmovss.datasets.label_conversion import coco_stuff_to_171
from mmovss.datasets.label_file_conversion import (
    add_conversion_args,
    convert_label_files,
    list_stuffthingmap_pairs,
)
from mmovss.runtime import run_tool

SUFFIX = '_labelTrainIds.png'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='COCO-Stuff root (data/coco_stuff164k)')
    parser.add_argument('--out-dir', help='output root (default: root)')
    parser.add_argument('--splits', nargs='+',
                        default=['train2017', 'val2017'])
    add_conversion_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pairs = list_stuffthingmap_pairs(args.root, args.out_dir or args.root, args.splits,
                                     SUFFIX)
    convert_label_files(
        pairs, lambda p: coco_stuff_to_171(np.array(Image.open(p)), p),
        overwrite=args.overwrite, resume=args.resume)


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
