"""ADE20K-full (``ADE20K_2021_17_01``) -> A-847 16-bit labels.

Reads ``index_ade20k.pkl`` for the image list (with a restricted unpickler
that resolves only NumPy array globals, so a tampered file cannot run code),
the RGB ``*_seg.png`` of each image of the chosen splits, and writes the
detectron2 layout used by the OVSS repos and by
``configs/_base_/datasets/ade20k_847.py``:

* ``images_detectron2/<split>/<name>.jpg``: the image, resized so that its
  short side is at most ``--max-short-side`` (512, as ODISE / FC-CLIP / SAN
  prepare A-847; 0 keeps the size) with OpenCV's bilinear interpolation;
* ``annotations_detectron2/<split>/<name>.tif``: 16-bit, 0-846, 65535 =
  unlabelled or a class outside the 847, resized with OpenCV's nearest
  neighbour.

``validation`` is the ``ADE_val_*`` images (A-847 is scored on them only);
``training`` is every other image of the index, ``ADE_frame_*`` included, as
the published preparation splits it. The count of each split is printed.

The resizing is the published preparation's (``cv2.resize`` with
``INTER_LINEAR`` / ``INTER_NEAREST``): Pillow's bilinear filter smooths a
downscaled image and its nearest neighbour samples other pixels, which would
give other ground truth than the published A-847 numbers were scored on.

Example::

    python tools/dataset_converters/ade20k_847.py data/ade/ADE20K_2021_17_01
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np
from PIL import Image

from mmovss.datasets.label_conversion import ade20k_full_to_847
from mmovss.datasets.label_file_conversion import add_conversion_args, convert_label_files
from mmovss.io import load_restricted_pickle
from mmovss.runtime import run_tool

SPLITS = ('training', 'validation')


def target_size(width, height, max_short_side):
    """Size ``(w, h)`` with the short side at most ``max_short_side``."""
    short = min(width, height)
    if not max_short_side or short <= max_short_side:
        return width, height
    scale = max_short_side / short
    if width <= height:
        return max_short_side, round(height * scale)
    return round(width * scale), max_short_side


def split_of(name):
    """The split of an image file name, as the published preparation.

    ODISE / FC-CLIP (``datasets/prepare_ade20k_full_sem_seg.py``) and
    CAT-Seg / OVSeg: ``'validation' if name.split('_')[1] == 'val' else
    'training'``, so the ``ADE_frame_*`` images that ``index_ade20k.pkl``
    lists besides ``ADE_train_*`` / ``ADE_val_*`` are training images.
    """
    return 'validation' if name.split('_')[1:2] == ['val'] else 'training'


def count_line(split, image_paths):
    """``'<split>: N images (M ADE_frame_*)'`` for the log."""
    frames = sum(osp.basename(p).startswith('ADE_frame_')
                 for p in image_paths)
    return f'{split}: {len(image_paths)} images ({frames} ADE_frame_*)'


def list_images(root, splits):
    """Yields ``(split, image path)`` from ``index_ade20k.pkl``."""
    index_file = osp.join(root, 'index_ade20k.pkl')
    if not osp.isfile(index_file):
        raise FileNotFoundError(
            f'{index_file} does not exist; unzip ADE20K_2021_17_01.zip so '
            'that its index_ade20k.pkl is in the root given here.')
    # A plain pickle.load would run any code a tampered download names.
    index = load_restricted_pickle(index_file)
    parent = osp.dirname(osp.abspath(root))
    for folder, name in zip(index['folder'], index['filename']):
        split = split_of(name)
        if split in splits:
            yield split, osp.join(parent, folder, name)


def convert_one(image_path, image_out, max_short_side):
    """Writes the resized image; returns the resized A-847 label."""
    seg_path = image_path[:-len('.jpg')] + '_seg.png'
    label = ade20k_full_to_847(
        np.array(Image.open(seg_path).convert('RGB')), seg_path)
    image = np.array(Image.open(image_path).convert('RGB'))
    height, width = image.shape[:2]
    size = target_size(width, height, max_short_side)
    if size != (width, height):
        # OpenCV as ODISE / FC-CLIP / CAT-Seg (Pillow gives other pixels).
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    Image.fromarray(image).save(image_out)
    return label


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='ADE20K_2021_17_01 folder')
    parser.add_argument('--out-dir', help='output root (default: root)')
    parser.add_argument('--splits', nargs='+', default=['validation'],
                        choices=SPLITS)
    parser.add_argument('--max-short-side', type=int, default=512)
    add_conversion_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out_dir = args.out_dir or args.root
    pairs, image_outs, by_split = [], {}, {}
    for split, image_path in list_images(args.root, args.splits):
        by_split.setdefault(split, []).append(image_path)
        name = osp.splitext(osp.basename(image_path))[0]
        label_out = osp.join(out_dir, 'annotations_detectron2', split,
                             name + '.tif')
        image_outs[image_path] = osp.join(out_dir, 'images_detectron2',
                                          split, name + '.jpg')
        pairs.append((image_path, label_out))
    for split in dict.fromkeys(args.splits):
        print(count_line(split, by_split.get(split, [])))

    def convert(image_path):
        image_out = image_outs[image_path]
        os.makedirs(osp.dirname(image_out), exist_ok=True)
        return convert_one(image_path, image_out, args.max_short_side)

    convert_label_files(pairs, convert, overwrite=args.overwrite,
                        resume=args.resume)


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
