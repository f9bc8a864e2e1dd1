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
import re
import sys
import tempfile
import time

import torch

# benchmark.py (same folder) holds the helpers shared by the benchmark tools
# (and puts the repository on sys.path).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark  # noqa: E402


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


def load_vocabulary(spec: str):
    """See :func:`benchmark.load_vocabulary` (shared with ``benchmark.py``)."""
    try:
        return benchmark.load_vocabulary(spec)
    except benchmark.BenchmarkError as err:
        raise SystemExit(str(err)) from None


def build_ours(model: str, seed: int, templates: str, cache_dir: str):
    from mmovss.models.text_encoders import OpenCLIPTextEncoder
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # QuickGELU, as in OpenAI's CLIP and in mmseg's CLIPTextEncoder.
        return OpenCLIPTextEncoder(model_name=model, quick_gelu=True,
                                   templates=templates, cache_dir=cache_dir)


def build_mmseg(ours, templates):
    """mmseg's CLIPTextEncoder (SAN) carrying the weights of ``ours``."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    tower = ours.tower
    width = tower.positional_embedding.shape[1]
    blocks = tower.transformer.resblocks
    theirs = MODELS.build(
        dict(type='CLIPTextEncoder', vocabulary=['unused'],
             templates=list(templates),
             context_length=tower.positional_embedding.shape[0],
             embed_dims=width, num_layers=len(blocks),
             num_heads=blocks[0].attn.num_heads,
             output_dims=tower.text_projection.shape[1],
             cache_feature=False, cat_bg=False))
    rename = [
        (r'^transformer\.resblocks\.(\d+)\.attn\.', r'transformer.\1.attentions.0.attn.'),
        (r'^transformer\.resblocks\.(\d+)\.ln_1\.', r'transformer.\1.norms.0.'),
        (r'^transformer\.resblocks\.(\d+)\.ln_2\.', r'transformer.\1.norms.1.'),
        (r'^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.', r'transformer.\1.ffns.0.layers.0.0.'),
        (r'^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.', r'transformer.\1.ffns.0.layers.1.'),
    ]
    state = {}
    for key, value in tower.state_dict().items():
        for pattern, repl in rename:
            key = re.sub(pattern, repl, key)
        state[key] = value
    state['logit_scale'] = ours.logit_scale.log()
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f'weight mapping failed: missing={missing} '
                           f'unexpected={unexpected}')
    return theirs.eval()


def main():
    args = parse_args()
    import mmovss  # noqa: F401  (registers modules, applies compat)
    from mmovss.vocab import get_templates

    vocabulary = load_vocabulary(args.vocabulary)
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
    theirs = build_mmseg(ours, templates)

    start = time.perf_counter()
    with torch.no_grad():
        reference = theirs.template_encode(names)
    t_mmseg = time.perf_counter() - start
    print(f'mmseg CLIPTextEncoder: {t_mmseg:.3f} s', flush=True)

    start = time.perf_counter()
    cold = ours.embed_names(names)
    t_cold = time.perf_counter() - start
    print(f'mmovss cold (EOT-truncated, batched, writes cache): '
          f'{t_cold:.3f} s', flush=True)
    del ours

    ours_again = build_ours(args.model, args.seed, args.templates, cache_dir)
    start = time.perf_counter()
    warm = ours_again.embed_names(names)
    t_warm = time.perf_counter() - start
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
