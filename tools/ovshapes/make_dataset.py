"""Generate an OVShapes world in the MMSeg layout (deterministic by seed).

    python tools/ovshapes/make_dataset.py --out data/ovshapes --seed 0
    python tools/ovshapes/make_dataset.py --out data/ovshapes_small --seed 1 \\
        --num-train 300 --num-val 60
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.io import UnsafeOutputError, check_output_dir  # noqa: E402
from mmovss.ovshapes.writer import check_world_settings, write_world  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description='Generate an OVShapes world')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--size', type=int, default=64, help='image side in pixels')
    parser.add_argument('--force', '--overwrite', dest='force', action='store_true',
                        help='write into a non-empty --out (e.g. replace an existing world)')
    args = parser.parse_args(argv)
    try:
        check_world_settings(args.seed, args.num_train, args.num_val, args.size)
    except ValueError as err:
        parser.error(str(err))
    try:
        # a non-empty folder (a world or anything else) only with --force
        check_output_dir(args.out, overwrite=args.force, flag='--out')
    except UnsafeOutputError as err:
        sys.exit(f'{err} (--force is the same as --overwrite here)')
    try:
        info = write_world(args.out, seed=args.seed, num_train=args.num_train,
                           num_val=args.num_val, size=args.size, overwrite=args.force)
    except FileExistsError as err:
        sys.exit(str(err))
    print(f"wrote {args.num_train} train + {args.num_val} val images to {info['root']} "
          f"({len(info['seen'])} seen, {len(info['unseen'])} unseen classes)")


if __name__ == '__main__':
    main()
