"""Cityscapes: ``*_gtFine_labelIds.png`` -> ``*_gtFine_labelTrainIds.png``.

Maps the 34 label ids to the 19 train ids of the official label table
(255 = ignored) for every file under ``<root>/gtFine/<split>/<city>/`` and
writes the result next to it (or under ``--out-dir`` with the same tree).

Example::

    python tools/dataset_converters/cityscapes.py data/cityscapes
"""
import argparse
import glob
import os.path as osp

import numpy as np
from PIL import Image

from mmovss.datasets.label_conversion import cityscapes_to_train_ids
from mmovss.datasets.label_file_conversion import add_conversion_args, convert_label_files
from mmovss.runtime import run_tool

SRC_SUFFIX = '_gtFine_labelIds.png'
DST_SUFFIX = '_gtFine_labelTrainIds.png'


def list_pairs(root, out_dir, splits):
    """Pairs every ``labelIds`` file with its ``labelTrainIds`` path."""
    pairs = []
    for split in splits:
        split_dir = osp.join(root, 'gtFine', split)
        if not osp.isdir(split_dir):
            raise FileNotFoundError(
                f'{split_dir} does not exist; unzip gtFine_trainvaltest.zip '
                f'into {root}.')
        for src in sorted(glob.glob(osp.join(split_dir, '*', '*' +
                                             SRC_SUFFIX))):
            rel = osp.relpath(src, root)
            pairs.append((src, osp.join(out_dir,
                                        rel[:-len(SRC_SUFFIX)] + DST_SUFFIX)))
    return pairs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='Cityscapes root (data/cityscapes)')
    parser.add_argument('--out-dir', help='output root (default: root)')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'])
    add_conversion_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    pairs = list_pairs(args.root, args.out_dir or args.root, args.splits)
    convert_label_files(
        pairs, lambda p: cityscapes_to_train_ids(np.array(Image.open(p)), p),
        overwrite=args.overwrite, resume=args.resume)


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
