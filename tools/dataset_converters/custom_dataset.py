"""Check your own dataset and write its config (and a method's on it).

Examples::

    # MMSeg layout (img_dir/{train,val}, ann_dir/{train,val}), classes with "| unseen"
    python tools/dataset_converters/custom_dataset.py data/my_data --classes classes.txt
    # flat images/ + labels/, 20 % for validation, unseen list in a file, a method on it
    python tools/dataset_converters/custom_dataset.py data/my_data --classes classes.txt \\
        --unseen-file unseen.txt --method configs/lseg/CONFIG.py --out-dir configs/custom

The class file has one class per line (line i = label value i), synonyms
separated by commas and an optional "| unseen" marker. Every image/label pair
is checked first (missing pairs, size mismatches, unknown label values,
colour label files); problems are listed with file names and nothing is
written (``--no-check`` skips the check). See docs/custom_dataset.md.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmovss  # noqa: E402,F401  (compat + registration)
from mmovss.datasets.custom import DataCheck, read_class_file, read_utf8_lines  # noqa: E402
from mmovss.datasets.custom_config import (  # noqa: E402
    check_ignore_index,
    check_layout,
    find_layout,
    split_presence_problems,
    write_custom_configs,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Check a folder of images and label maps and write its dataset config')
    parser.add_argument('root', help='dataset folder (data_root)')
    parser.add_argument('--classes', required=True, help='class file (one class per line)')
    parser.add_argument('--unseen', nargs='+', default=[], metavar='NAME',
                        help='unseen classes (any of their names)')
    parser.add_argument('--unseen-file', help='text file, one unseen class per line')
    parser.add_argument('--name', help='dataset name (default: the folder name)')
    parser.add_argument('--img-dir', help='image folder under root (default: img_dir or images)')
    parser.add_argument('--ann-dir', help='label folder under root (default: ann_dir or labels)')
    parser.add_argument('--label-suffix', default='', metavar='ENDING',
                        help="label files named after their image with ENDING added, e.g. "
                             "'_mask' for NAME.jpg + NAME_mask.png (default: none)")
    parser.add_argument('--train-split', default='train')
    parser.add_argument('--val-split', default='val')
    parser.add_argument('--val-fraction', type=float, default=0.2,
                        help='flat layout: share of pairs used for validation')
    parser.add_argument('--seed', type=int, default=0, help='flat layout: split seed')
    parser.add_argument('--ignore-index', type=int, default=None,
                        help='unlabelled value (default 255; 65535 above 255 classes)')
    parser.add_argument('--method', action='append', default=[], metavar='CONFIG',
                        help='also write CONFIG trained/evaluated on this dataset (repeatable)')
    parser.add_argument('--out-dir', default='configs/custom', help='where configs are written')
    parser.add_argument('--overwrite', action='store_true', help='replace existing configs')
    parser.add_argument('--no-check', action='store_true', help='skip the data check')
    return parser.parse_args(argv)


def _unseen_names(args):
    names = list(args.unseen)
    if args.unseen_file:
        if not osp.isfile(args.unseen_file):
            raise FileNotFoundError(f'Unseen file {args.unseen_file!r} does not exist.')
        names += [ln.strip() for ln in read_utf8_lines(args.unseen_file, 'Unseen file')
                  if ln.strip() and not ln.startswith('#')]
    return names


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        classes = read_class_file(args.classes, _unseen_names(args))
        ignore_index = args.ignore_index
        if ignore_index is None:
            ignore_index = 255 if len(classes.classes) <= 255 else 65535
        check_ignore_index(ignore_index, classes)
        name = args.name or osp.basename(osp.normpath(args.root))
        check = DataCheck()
        layout = find_layout(args.root, check, args.img_dir, args.ann_dir, args.train_split,
                             args.val_split, args.val_fraction, args.seed,
                             split_dir=osp.join('splits', name),
                             label_suffix=args.label_suffix)
        if not args.no_check:
            check_layout(layout, classes, ignore_index, check)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    train, val = (len(layout.splits[k]['pairs']) for k in ('train', 'val'))
    print(f'{args.root}: {train} train + {val} val pairs, {len(classes.classes)} classes '
          f'({len(classes.unseen)} unseen: {", ".join(classes.unseen) or "none"}), images '
          f'*{layout.img_suffix}, labels *{layout.seg_map_suffix}')
    if not args.no_check:
        if check.label_bits:
            print(f'label files: {", ".join(f"{b}-bit" for b in sorted(check.label_bits))}')
        if check.pixels is not None:
            absent = [c.split(',')[0] for c, n in zip(classes.classes, check.pixels) if n == 0]
            if absent:
                print(f'note: no pixel of {len(absent)} class(es): {", ".join(absent[:10])}')
            if check.ok:  # per split: what training and the unseen mIoU need
                errors, notes = split_presence_problems(layout, classes)
                for note in notes:
                    print(f'note: {note}')
                for error in errors:
                    check.add('classes missing from a split', error)
        if not check.ok:
            print(f'error: the data check found problems (nothing written):\n{check.report()}',
                  file=sys.stderr)
            return 1
        print(f'data check: {check.pairs} pairs OK')
    try:
        written = write_custom_configs(name, layout, classes, args.out_dir, ignore_index,
                                       args.method, args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for path in written:
        print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
