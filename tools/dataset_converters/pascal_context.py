"""PASCAL Context full ``.mat`` annotations -> PC-459 and PC-59/60 labels.

Reads ``<VOC2010>/trainval/<id>.mat`` (``trainval.tar.gz`` from the PASCAL
Context site; ``LabelMap`` holds the 459 ``labels.txt`` ids) for the ids of
each split list and writes, in the mmseg layout:

* ``SegmentationClassContext459/<id>.tif``: 16-bit, 0-458, 65535 = unlabelled
  (``configs/_base_/datasets/pascal_context_459.py``);
* ``SegmentationClassContext/<id>.png``: 0 = background, 1-59 = the PC-59
  classes (``pascal_context_59.py`` / ``pascal_context_60.py``);
* ``ImageSets/SegmentationContext/<split>.txt`` when it is missing.

The split lists are ``ImageSets/SegmentationContext/<split>.txt`` (mmseg) or,
failing that, ``pascalcontext_<split>.txt`` (the 5105-image val list that
CAT-Seg ships).

Example::

    python tools/dataset_converters/pascal_context.py data/VOCdevkit/VOC2010
"""
import argparse
import os
import os.path as osp

from scipy.io import loadmat

from mmovss.datasets.label_conversion import pascal_context_to_59, pascal_context_to_459
from mmovss.datasets.label_file_conversion import add_conversion_args, convert_label_files
from mmovss.runtime import run_tool

TARGETS = {
    '459': ('SegmentationClassContext459', '.tif', pascal_context_to_459),
    '59': ('SegmentationClassContext', '.png', pascal_context_to_59),
}


def read_split(root, out_dir, split):
    """Returns the ids of a split and writes the mmseg split file if absent."""
    mmseg_list = osp.join(root, 'ImageSets', 'SegmentationContext',
                          f'{split}.txt')
    fallback = osp.join(root, f'pascalcontext_{split}.txt')
    for path in (mmseg_list, fallback):
        if osp.isfile(path):
            with open(path) as f:
                ids = [line.strip() for line in f if line.strip()]
            break
    else:
        raise FileNotFoundError(
            f'No split list for {split!r}: neither {mmseg_list} nor '
            f'{fallback} exists (see docs/dataset_prepare.md).')
    out_list = osp.join(out_dir, 'ImageSets', 'SegmentationContext',
                        f'{split}.txt')
    if not osp.isfile(out_list):
        os.makedirs(osp.dirname(out_list), exist_ok=True)
        with open(out_list, 'w') as f:
            f.write('\n'.join(ids) + '\n')
    return ids


def load_label_map(path):
    """Reads ``LabelMap`` from a PASCAL Context ``.mat`` file."""
    mat = loadmat(path)
    if 'LabelMap' not in mat:
        raise ValueError(f'{path} has no LabelMap; is it a PASCAL Context '
                         'trainval/*.mat file?')
    return mat['LabelMap']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='VOC2010 folder holding trainval/')
    parser.add_argument('--out-dir', help='output root (default: root)')
    parser.add_argument('--splits', nargs='+', default=['val'])
    parser.add_argument('--targets', nargs='+', choices=sorted(TARGETS),
                        default=sorted(TARGETS))
    add_conversion_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out_dir = args.out_dir or args.root
    ids = []
    for split in args.splits:
        ids += read_split(args.root, out_dir, split)
    for target in args.targets:
        folder, ext, convert = TARGETS[target]
        pairs = [(osp.join(args.root, 'trainval', f'{i}.mat'),
                  osp.join(out_dir, folder, f'{i}{ext}')) for i in ids]
        print(f'PC-{target} -> {osp.join(out_dir, folder)}')
        convert_label_files(
            pairs, lambda p, fn=convert: fn(load_label_map(p), p),
            overwrite=args.overwrite, resume=args.resume)


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
