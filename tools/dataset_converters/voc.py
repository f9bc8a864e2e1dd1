"""PASCAL VOC 2012 ``SegmentationClass`` -> detectron2-prepared VOC-20/21.

The mmseg layout reads ``SegmentationClass`` directly and needs no
conversion. This script writes the detectron2 layout of the OVSS repos for
the ids of ``ImageSets/Segmentation/<split>.txt``:

* ``annotations_detectron2/<split>/<id>.png``: VOC-20, background -> 255,
  classes 0-19;
* ``annotations_detectron2_bg/<split>/<id>.png``: VOC-21 with background as
  class 20 (CAT-Seg's convention; ``PascalVOC21Dataset`` maps it back to 0).

Example::

    python tools/dataset_converters/voc.py data/VOCdevkit/VOC2012
"""
import argparse
import os.path as osp

import numpy as np
from PIL import Image

from mmovss.datasets.label_conversion import voc_to_detectron2
from mmovss.datasets.label_file_conversion import (
    add_conversion_args,
    convert_label_files,
    nested_download_hint,
)
from mmovss.runtime import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='VOC2012 folder')
    parser.add_argument('--out-dir', help='output root (default: root)')
    parser.add_argument('--splits', nargs='+', default=['val'])
    add_conversion_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out_dir = args.out_dir or args.root
    for split in args.splits:
        list_file = osp.join(args.root, 'ImageSets', 'Segmentation',
                             f'{split}.txt')
        if not osp.isfile(list_file):
            raise FileNotFoundError(
                f'{list_file} does not exist. VOCtrainval_11-May-2012.tar '
                'holds VOCdevkit/VOC2012/: unpack it into data/ (tar -xf '
                'VOCtrainval_11-May-2012.tar -C data) and give '
                'data/VOCdevkit/VOC2012.' + nested_download_hint(args.root))
        with open(list_file) as f:
            ids = [line.strip() for line in f if line.strip()]
        for folder, background in (('annotations_detectron2', False),
                                   ('annotations_detectron2_bg', True)):
            pairs = [(osp.join(args.root, 'SegmentationClass', f'{i}.png'),
                      osp.join(out_dir, folder, split, f'{i}.png'))
                     for i in ids]
            print(f'{folder}/{split}')
            convert_label_files(
                pairs,
                lambda p, bg=background: voc_to_detectron2(
                    np.array(Image.open(p)), bg, p),
                overwrite=args.overwrite, resume=args.resume)


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
