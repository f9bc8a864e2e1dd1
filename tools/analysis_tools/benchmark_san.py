"""Inference time of mmovss's SAN vs mmseg 1.2.2's SAN (same weights, input).

Both models are built at full size (ViT-B/16 SAN, mmseg's
``_base_/models/san_vit-b16.py`` sizes) with random weights (nothing is
downloaded); mmovss's weights are copied into mmseg's model with the SAN
checkpoint mapping (:mod:`mmovss.converters.san_mmseg`), the outputs are checked
to agree, and ``encode_decode`` is timed on one image with the text
embeddings of the vocabulary already cached by both text encoders::

    python tools/analysis_tools/benchmark_san.py --size 640 --runs 5

Prints the mean/min seconds per image of each, and the max abs difference.
"""
import argparse
import copy
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

from mmovss.benchmarking import summarize_times, timed_runs  # noqa: E402
from mmovss.benchmarking.mmseg_reference import build_san_pair  # noqa: E402
from mmovss.vocab import load_benchmark_classes  # noqa: E402


def time_it(fn, runs: int, warmup: int):
    """Mean and min seconds of ``runs`` calls after ``warmup`` ones."""
    stats = summarize_times(timed_runs(fn, runs, warmup))
    return stats['mean'], stats['min']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--queries', type=int, default=100)
    parser.add_argument('--benchmark', default='coco_stuff171',
                        help='vocabulary (first name of every class)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [c.split(',')[0].strip()
             for c in load_benchmark_classes(args.benchmark)]
    torch.manual_seed(0)
    ours, ref = build_san_pair(names, args.queries)
    x = torch.randn(1, 3, args.size, args.size)
    metas = [dict(img_shape=(args.size, args.size),
                  pad_shape=(args.size, args.size),
                  ori_shape=(args.size, args.size))]
    with torch.no_grad():
        embeds = ours.class_embeddings()  # cached from here on
        a = ours.encode_decode(x, metas, embeds)
        b = ref.encode_decode(x, copy.deepcopy(metas))  # fills mmseg's cache
        diff = (a - b).abs().max().item()
        t_ours = time_it(lambda: ours.encode_decode(x, metas, embeds),
                         args.runs, args.warmup)
        t_ref = time_it(lambda: ref.encode_decode(x, copy.deepcopy(metas)),
                        args.runs, args.warmup)
    print(f'input 1x3x{args.size}x{args.size}, {len(names)} classes, '
          f'{args.queries} queries, {torch.get_num_threads()} threads, '
          f'device cpu')
    print(f'mmovss SAN: mean {t_ours[0]:.3f} s, min {t_ours[1]:.3f} s')
    print(f'mmseg  SAN: mean {t_ref[0]:.3f} s, min {t_ref[1]:.3f} s')
    print(f'max |logit difference| = {diff:.2e}')


if __name__ == '__main__':
    main()
