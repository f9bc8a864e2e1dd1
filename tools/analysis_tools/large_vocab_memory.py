"""Peak memory of one inference with a large vocabulary (ADE-847, PC-459).

Builds a config's model with random weights (no download), sets a benchmark
vocabulary (847 ADE classes by default), embeds it, then runs ``predict``
on one image (a real photo resized to ``--image-size``, or noise) through the
config's test pipeline and reports the process's peak resident set size
(Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` just before the
call) above the resident size before the call, i.e. above the model's own
memory (weights, text embeddings, caches). The first call is measured
(one-time allocations included, the conservative figure). ``--dense``
measures mmseg's path instead (the window average of all classes at the
input size), for comparison. Example::

    python tools/analysis_tools/large_vocab_memory.py \\
        configs/naclip/naclip_vit-b16_ade20k_150.py --vocabulary ade20k_847 \\
        --image-size 683 512 --short-side 512

The issue #11 budget: under 1.5 GB above the model for one 683 x 512 image,
847 classes, ViT-B/16.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# benchmark.py (same folder) holds the helpers shared by the benchmark tools
# (and puts the repository on sys.path).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import (current_rss_mb, make_image, peak_rss_mb,  # noqa: E402
                       reset_peak_rss, use_random_weights)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--vocabulary', default='ade20k_847',
                        help='a benchmark name (mmovss.vocab.BENCHMARK_NAMES) '
                        'or a class-name file')
    parser.add_argument('--image', default=os.path.join(
        REPO, '..', 'shared', 'realdata', 'ade', 'ADEChallengeData2016',
        'images', 'validation'), help='an image file or a folder (first '
        'image); noise if missing')
    parser.add_argument('--image-size', type=int, nargs=2, default=(683, 512),
                        metavar=('W', 'H'), help='original image size')
    parser.add_argument('--short-side', type=int, default=None,
                        help="override the test pipeline's Resize short side")
    parser.add_argument('--dense', action='store_true',
                        help="mmseg's dense path (for comparison)")
    parser.add_argument('--threads', type=int, default=0)
    return parser.parse_args()


def load_image(path: str, size) -> np.ndarray:
    """BGR uint8 (H, W, 3) of the requested (W, H) size: ``path`` (a folder:
    its first .jpg/.png) resized, or noise when there is no such file."""
    if os.path.isdir(path):
        files = sorted(f for f in os.listdir(path)
                       if f.lower().endswith(('.jpg', '.png')))
        path = os.path.join(path, files[0]) if files else ''
    return make_image(path if path and os.path.isfile(path) else None,
                      (size[1], size[0]))


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmovss  # noqa: F401
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmovss.vocab import BENCHMARK_NAMES, load_benchmark_classes
    cfg = Config.fromfile(args.config)
    vocab = args.vocabulary
    if vocab in BENCHMARK_NAMES:
        vocab = list(load_benchmark_classes(vocab))
        seen = set()  # ADE-847 names 'pot' twice; make names unique
        for i, line in enumerate(vocab):
            names = [n.strip() for n in line.split(',')]
            names = [n if n not in seen else f'{n} ({i})' for n in names]
            seen.update(names)
            vocab[i] = ', '.join(names)
    options = {'model.vocabulary': vocab,
               'model.text_encoder.templates': 'single',
               'model.text_encoder.cache_dir': None}
    cfg.merge_from_dict(options)
    use_random_weights(cfg.model)
    init_default_scope('mmseg')
    torch.manual_seed(0)  # the same random weights in every run
    model = MODELS.build(cfg.model).eval()
    if args.dense:
        model.chunked_inference = lambda *a, **k: None
    pipeline = [dict(t) for t in cfg.test_pipeline
                if 'Annotation' not in t['type']]
    for t in pipeline:
        if t['type'] == 'LoadImageFromFile':
            t['type'] = 'LoadImageFromNDArray'
        if t['type'] == 'Resize' and args.short_side:
            t['scale'] = (4 * args.short_side, args.short_side)
    image = load_image(args.image, args.image_size)
    sample = Compose(pipeline)(dict(img=image))
    with torch.no_grad():
        embeds = model.class_embeddings()
        batch = model.data_preprocessor(
            dict(inputs=[sample['inputs']],
                 data_samples=[sample['data_samples']]), False)
        before = current_rss_mb() / 1024  # GiB
        exact = reset_peak_rss()
        start = time.perf_counter()
        out = model.predict(batch['inputs'], batch['data_samples'])
        seconds = time.perf_counter() - start
        peak = peak_rss_mb() / 1024
    pred = out[0].pred_sem_seg.data
    h, w = batch['inputs'].shape[2:]
    full = embeds.num_names * h * w * 4 / 2**30
    print(f'{os.path.basename(args.config)}: {embeds.num_classes} classes '
          f'({embeds.num_names} names), image {args.image_size[0]}x'
          f'{args.image_size[1]} -> input {w}x{h}, '
          f'{"dense (mmseg)" if args.dense else "chunked"} path, '
          f'{torch.get_num_threads()} threads')
    print(f'  RSS before predict (model + text embeddings): '
          f'{before:.2f} GB')
    print(f'  peak RSS during predict: {peak:.2f} GB '
          f'({"VmHWM after clear_refs" if exact else "ru_maxrss, lifetime"})')
    print(f'  peak above the model: {peak - before:.3f} GB '
          f'(all names at the input size in float32 would be {full:.2f} GB)')
    print(f'  predict: {seconds:.1f} s, labels {tuple(pred.shape)}, '
          f'{len(pred.unique())} classes present')


if __name__ == '__main__':
    main()
