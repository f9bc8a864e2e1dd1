"""Write docs/reproduce.md from configs/*/metafile.yaml (or check it is current).

    python tools/misc/reproduce_table.py            # rewrite docs/reproduce.md
    python tools/misc/reproduce_table.py --check    # exit 1 if the page is stale

Thin wrapper of :mod:`mmovss.apis.reproduce_table`.
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)
from mmovss.apis.reproduce_table import render_reproduce  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=osp.join(REPO, 'docs', 'reproduce.md'),
                        help='the page to write (default: docs/reproduce.md)')
    parser.add_argument('--configs', default=None,
                        help='configs folder to read (default: the repository\'s)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 when --out differs from the generated page')
    args = parser.parse_args(argv)
    try:
        text = render_reproduce(args.configs)
    except ValueError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    current = None
    if osp.isfile(args.out):
        with open(args.out, encoding='utf-8') as f:
            current = f.read()
    if args.check:
        if current != text:
            print(f'{args.out} is stale: run python tools/misc/reproduce_table.py',
                  file=sys.stderr)
            return 1
        print(f'{args.out} is current')
        return 0
    if current != text:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
