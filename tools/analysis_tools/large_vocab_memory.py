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

Configs that read pre-computed masks (``FileMaskGenerator``, e.g.
CorrCLIP) get a mask file of ``--region-masks`` grid regions for the image,
in the published format, so they run without a mask download.

The issue #11 budget: under 1.5 GB above the model for one 683 x 512 image,
847 classes, ViT-B/16.
"""
import argparse
import os
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # runs from a clone without installation

from mmovss.benchmarking import (  # noqa: E402
    current_rss_mb,
    first_image_or_noise,
    peak_rss_mb,
    reset_peak_rss,
    timed_call,
    unique_benchmark_classes,
    use_random_weights,
)


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
    parser.add_argument('--benchmark', default=None, metavar='KEY',
                        help="evaluate the config with the method's protocol "
                        'of this benchmark first (test pipeline, window; '
                        'as tools/test.py --benchmark)')
    parser.add_argument('--dense', action='store_true',
                        help="mmseg's dense path (for comparison)")
    parser.add_argument('--region-masks', type=int, default=64, metavar='N',
                        help='configs reading pre-computed masks '
                        '(FileMaskGenerator, e.g. CorrCLIP): a file with N '
                        'regions (a grid) is written for the image')
    parser.add_argument('--threads', type=int, default=0)
    return parser.parse_args()


def file_mask_generators(node):
    """Every ``FileMaskGenerator`` dict in a model config."""
    if isinstance(node, dict):
        if node.get('type') == 'FileMaskGenerator':
            yield node
        for value in node.values():
            yield from file_mask_generators(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from file_mask_generators(value)


def write_grid_masks(mask_dir, stem, height, width, regions):
    """``regions`` rectangles tiling the image, in the published format."""
    import math

    from mmovss.models.mask_generators.files import save_regions
    rows = max(1, int(math.sqrt(regions * height / width)))
    cols = max(1, math.ceil(regions / rows))
    r = torch.arange(height)[:, None] * rows // height
    c = torch.arange(width)[None, :] * cols // width
    save_regions(os.path.join(mask_dir, f'{stem}.npz'), r * cols + c)
    return rows * cols


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import mmovss  # noqa: F401
    from mmovss.vocab import BENCHMARK_NAMES

    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(args.config)
    if args.benchmark:
        from mmovss.protocols import apply_benchmark
        cfg = apply_benchmark(cfg, args.benchmark)
    vocab = args.vocabulary
    if vocab in BENCHMARK_NAMES:
        vocab = unique_benchmark_classes(vocab)  # ADE-847 names 'pot' twice
    options = {'model.vocabulary': vocab,
               'model.text_encoder.templates': 'single',
               'model.text_encoder.cache_dir': None}
    cfg.merge_from_dict(options)
    use_random_weights(cfg.model)
    import tempfile
    mask_dir = tempfile.mkdtemp(prefix='mmovss_masks_')
    file_generators = list(file_mask_generators(cfg.model))
    for generator in file_generators:
        generator['mask_dir'] = mask_dir
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
    width, height = args.image_size
    image = first_image_or_noise(args.image, (height, width))
    sample = Compose(pipeline)(dict(img=image))
    if file_generators:
        num_regions = write_grid_masks(mask_dir, 'image', height, width,
                                       args.region_masks)
        sample['data_samples'].set_metainfo(dict(img_path='image.jpg'))
        print(f'pre-computed masks: {num_regions} grid regions')
    with torch.no_grad():
        embeds = model.class_embeddings()
        batch = model.data_preprocessor(
            dict(inputs=[sample['inputs']],
                 data_samples=[sample['data_samples']]), False)
        before = current_rss_mb() / 1024  # GiB
        exact = reset_peak_rss()
        seconds, _, out = timed_call(
            lambda: model.predict(batch['inputs'], batch['data_samples']))
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
