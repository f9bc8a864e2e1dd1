"""Benchmarks mmovss's text encoder against mmseg's SAN ``CLIPTextEncoder``.

Both encoders get the same random CLIP text weights (no download) and embed
the same names with the same prompt templates. Ours is timed cold (empty disk
cache: EOT-truncated, batched encoding + writing the cache) and warm (a new
encoder instance with the same weights, served from the disk cache).

The last line printed is::

    max_abs_diff=<float> cold_speedup=<float> warm_speedup=<float>

Example::

    python tools/analysis_tools/benchmark_text_encoder.py \
        --model ViT-B-16 --vocabulary coco_stuff171 --templates vild
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from functools import partial

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

from mmovss.benchmarking import BenchmarkError, load_vocabulary, timed_call  # noqa: E402
from mmovss.benchmarking.mmseg_reference import build_mmseg_text_encoder  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='ViT-B-16',
                        help='open_clip model name (random weights)')
    parser.add_argument(
        '--vocabulary', default='coco_stuff171',
        help='a benchmark vocabulary key of mmovss.vocab.benchmarks, a '
        'registered dataset type (its METAINFO classes) or a text file')
    parser.add_argument('--templates', default='vild',
                        help="'vild', 'imagenet' or 'single'")
    parser.add_argument(
        '--synonyms', choices=['first', 'all'], default='first',
        help='embed the first name of each class (default) or every synonym')
    parser.add_argument('--cache-dir', default=None,
                        help='disk cache directory (default: a temporary one)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def build_ours(model: str, seed: int, templates: str, cache_dir: str):
    from mmovss.models.text_encoders import OpenCLIPTextEncoder
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # QuickGELU, as in OpenAI's CLIP and in mmseg's CLIPTextEncoder.
        return OpenCLIPTextEncoder(model_name=model, quick_gelu=True,
                                   templates=templates, cache_dir=cache_dir)


def main():
    args = parse_args()
    import mmovss  # noqa: F401  (registers modules, applies compat)
    from mmovss.vocab import get_templates

    try:
        vocabulary = load_vocabulary(args.vocabulary)
    except BenchmarkError as err:
        raise SystemExit(str(err)) from None
    names = list(vocabulary.class_names if args.synonyms == 'first'
                 else vocabulary.names)
    templates = get_templates(args.templates)
    tmp = None
    cache_dir = args.cache_dir
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix='mmovss_text_cache_')
        cache_dir = tmp.name
    print(f'model={args.model} (random weights, seed {args.seed}) '
          f'vocabulary={args.vocabulary} names={len(names)} '
          f'templates={args.templates} ({len(templates)}) '
          f'prompts={len(names) * len(templates)} '
          f'threads={torch.get_num_threads()}', flush=True)

    ours = build_ours(args.model, args.seed, args.templates, cache_dir)
    key_file = ours.disk_cache.path_for(ours.cache_key(names))
    if os.path.exists(key_file):
        os.remove(key_file)  # a true cold start
    theirs = build_mmseg_text_encoder(ours, templates)

    with torch.no_grad():
        t_mmseg, _, reference = timed_call(
            lambda: theirs.template_encode(names))
    print(f'mmseg CLIPTextEncoder: {t_mmseg:.3f} s', flush=True)

    t_cold, _, cold = timed_call(partial(ours.embed_names, names))
    print(f'mmovss cold (EOT-truncated, batched, writes cache): '
          f'{t_cold:.3f} s', flush=True)
    del ours

    ours_again = build_ours(args.model, args.seed, args.templates, cache_dir)
    t_warm, _, warm = timed_call(partial(ours_again.embed_names, names))
    print(f'mmovss warm (new encoder, disk cache): {t_warm * 1e3:.2f} ms',
          flush=True)
    if not torch.equal(warm, cold):
        raise RuntimeError('warm embeddings differ from cold ones')
    if tmp is not None:
        tmp.cleanup()

    max_abs_diff = (reference - cold).abs().max().item()
    print(f'max_abs_diff={max_abs_diff:.3e} '
          f'cold_speedup={t_mmseg / t_cold:.2f} '
          f'warm_speedup={t_mmseg / t_warm:.1f}')


if __name__ == '__main__':
    sys.exit(main())
