"""Times a trained method against its released code, side by side, with equal outputs.

Builds the official model with the method's parity generator
(``tools/parity/<method>_reference.py``, ``build_official``: the released
architecture, every parameter re-drawn from ``--seed``; SAN (official) and
OVSeg: :mod:`mmovss.benchmarking.official_builders`), converts its state
dict with our converter, loads it strictly into our model, runs both on the
same random image (alternately, after ``--warmup`` untimed calls of each),
checks that the outputs agree (class scores within ``--atol``, labels >=
99.9% equal) and reports the median seconds per image and the ratio ours /
official; ``--flops`` adds the FLOPs of one call of each and the rate each
achieved against the fp32 matrix peak (both near it: only fewer FLOPs or a
lower precision can go faster). The library is :mod:`mmovss.benchmarking.official_reference`.

Nothing of the official code is shipped with mmovss: pass your clones::

    python tools/analysis_tools/compare_reference_trained.py catseg \\
        --official-repo /path/to/CAT-Seg --detectron2 /path/to/detectron2 \\
        --size full --classes 10 --threads 2

``--size tiny`` uses the generators' tiny widths (seconds); ``--size full``
the released widths with random weights (see each method's description in
the report). Text encoding is outside the timed calls (both models cache
their class embeddings in the warm-up call).
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # runs from a clone without installation

from mmovss.benchmarking import BenchmarkError, command_line, device_name  # noqa: E402
from mmovss.benchmarking.official_reference import (  # noqa: E402
    METHODS,
    PACKAGE_BUILT,
    SIZES,
    class_names,
    flop_comparison,
    format_flop_comparison,
    format_report,
    markdown_row,
    side_by_side,
)
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    add_source_dirs,
    cuda_as_noop,
    detectron2_dir,
    seed_everything,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('method', choices=sorted(METHODS))
    parser.add_argument('--official-repo', required=True,
                        help='clone of the official repository of the method')
    parser.add_argument('--detectron2', default=None, help='detectron2 source clone '
                        '(detectron2-based methods; default: an installed detectron2)')
    parser.add_argument('--size', choices=SIZES, default='tiny')
    parser.add_argument('--image-size', type=int, nargs=2, default=[512, 683],
                        metavar=('H', 'W'))
    parser.add_argument('--classes', type=int, default=10,
                        help='the first N ADE20K-150 class names')
    parser.add_argument('--repeat', type=int, default=1, help='timed calls of each model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed calls of each before')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--atol', type=float, default=1e-4)
    parser.add_argument('--flops', action='store_true',
                        help='also count the FLOPs of one call of each and report the rate '
                        'each achieved against the fp32 matrix peak (one more untimed call '
                        'of each, and a peak measurement)')
    parser.add_argument('--markdown', action='store_true',
                        help='also print a row for docs/benchmarks.md')
    return parser.parse_args(argv)


def load_generator(method: str):
    """``tools/parity/<method>_reference.py`` as a module."""
    path = osp.join(REPO, 'tools', 'parity', f'{method}_reference.py')
    spec = importlib.util.spec_from_file_location(f'{method}_reference', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if method not in PACKAGE_BUILT and not hasattr(
            module, 'build_official_sized' if method == 'zegformer' else 'build_official'):
        raise BenchmarkError(f'{path} has no build_official(args, ...) function.')
    return module


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        args.classes_count = args.classes
        args.classes = class_names(args.classes)
        add_source_dirs(detectron2_dir(args.detectron2), args.official_repo)
        generator = load_generator(args.method)
        seed_everything(args.seed)
        with cuda_as_noop():
            pair = METHODS[args.method](generator, args)
            result = side_by_side(pair.ours, pair.official, args.repeat, args.warmup,
                                  args.atol)
            flops = flop_comparison(pair.ours, pair.official, result,
                                    modules=pair.modules) if args.flops else None
    except (BenchmarkError, FileNotFoundError) as err:
        raise SystemExit(str(err)) from None
    load = os.getloadavg()[0]
    print(format_report(args.method, result, pair.description))
    if pair.extra:
        print(', '.join(f'{k}: {v}' for k, v in pair.extra.items()))
    if flops is not None:
        print(format_flop_comparison(flops))
    print(f'{device_name("cpu")}, {torch.get_num_threads()} threads, float32; load average '
          f'(1 min) after the run {load:.2f}')
    if args.markdown:
        print(markdown_row(args.method, result, command_line(
            sys.argv[1:] if argv is None else argv,
            'tools/analysis_tools/compare_reference_trained.py'), flops))
    return 0 if result['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
