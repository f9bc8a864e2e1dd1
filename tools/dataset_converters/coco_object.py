"""COCO-Object: COCO-Stuff 164k stuffthingmaps -> background + 80 things.

Reads ``<root>/annotations/<split>/*.png`` (stuffthingmaps) and writes
``<out-dir>/annotations/<split>/<name>_instanceTrainIds.png`` (0 = background:
stuff and unlabelled pixels, 1-80 = things; GroupViT's conversion, whose labels
the published COCO-Object numbers use), the tree read by
``configs/_base_/datasets/coco_object.py``.

Example::

    python tools/dataset_converters/coco_object.py data/coco_stuff164k \
        --splits val2017
"""
import argparse

import numpy as np
from PIL import Image

from mmovss.datasets.label_conversion import coco_stuff_to_object
from mmovss.datasets.label_file_conversion import (
    add_conversion_args,
    convert_label_files,
    list_stuffthingmap_pairs,
)
from mmovss.runtime import run_tool

SUFFIX = '_instanceTrainIds.png'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='COCO-Stuff root (data/coco_stuff164k)')
    parser.add_argument('--out-dir', help='output root (default: root)')
    parser.add_argument('--splits', nargs='+', default=['val2017'])
    add_conversion_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pairs = list_stuffthingmap_pairs(args.root, args.out_dir or args.root, args.splits,
                                     SUFFIX)
    convert_label_files(
        pairs, lambda p: coco_stuff_to_object(np.array(Image.open(p)), p),
        overwrite=args.overwrite, resume=args.resume)


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
