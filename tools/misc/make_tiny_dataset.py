"""Write a tiny synthetic dataset in the MMSeg layout (for smoke tests).

    python tools/misc/make_tiny_dataset.py --out data/tiny --seed 0
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.testing.data import make_tiny_seg_dataset  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/tiny', help='output directory')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train', type=int, default=8)
    parser.add_argument('--num-val', type=int, default=4)
    args = parser.parse_args(argv)
    if osp.exists(osp.join(args.out, 'img_dir')):
        sys.exit(f'{args.out} already holds a dataset; choose another --out or delete it first.')
    info = make_tiny_seg_dataset(args.out, num_train=args.num_train, num_val=args.num_val,
                                 seed=args.seed)
    print(f"wrote {args.num_train}+{args.num_val} pairs to {info['data_root']}")


if __name__ == '__main__':
    main()
