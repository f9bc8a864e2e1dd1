"""Inference time of mmovss's SAN vs mmseg 1.2.2's SAN (same weights, input).

Both models are built at full size (ViT-B/16 SAN, mmseg's
``_base_/models/san_vit-b16.py`` sizes) with random weights (nothing is
downloaded); mmovss's weights are copied into mmseg's model with
``tools/model_converters/san_mmseg_to_mmovss.py``, the outputs are checked
to agree, and ``encode_decode`` is timed on one image with the text
embeddings of the vocabulary already cached by both text encoders::

    python tools/analysis_tools/benchmark_san.py --size 640 --runs 5

Prints the mean/min seconds per image of each, and the max abs difference.
"""
import argparse
import copy
import importlib.util
import math
import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = Path(__file__).resolve().parents[2]
# benchmark.py (same folder) holds the helpers shared by the benchmark tools
# (and puts the repository on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import (quiet_init_weights, summarize_times,  # noqa: E402
                       timed_runs, use_random_weights)

import mmovss  # noqa: E402,F401
from mmseg.registry import MODELS  # noqa: E402
from mmovss.vocab import load_benchmark_classes  # noqa: E402


def load_converter():
    path = ROOT / 'tools/model_converters/san_mmseg_to_mmovss.py'
    spec = importlib.util.spec_from_file_location('san_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_models(names, queries: int):
    ours_cfg = Config.fromfile(ROOT / 'configs/_base_/models/san_vit-b16.py')
    model_cfg = copy.deepcopy(ours_cfg.model)
    model_cfg.pop('data_preprocessor')
    use_random_weights(model_cfg)  # no download
    model_cfg.text_encoder.cache_dir = None
    model_cfg.vocabulary = list(names)
    model_cfg.test_cfg = dict(mode='whole')
    model_cfg.decode_head.side_adapter.num_queries = queries
    ours = MODELS.build(model_cfg).eval()
    quiet_init_weights(ours)

    import mmseg
    ref_cfg = Config.fromfile(
        Path(mmseg.__file__).parent /
        '.mim/configs/_base_/models/san_vit-b16.py').model
    ref_cfg.pop('data_preprocessor')
    ref_cfg.pop('pretrained')
    ref_cfg.text_encoder.vocabulary = list(names)
    ref_cfg.text_encoder.dataset_name = None
    ref_cfg.decode_head.num_classes = len(names)
    ref_cfg.decode_head.train_cfg = None
    ref_cfg.decode_head.san_cfg.num_queries = queries
    ref_cfg.decode_head.maskgen_cfg.sos_token_num = queries
    ref_cfg.decode_head.loss_decode = dict(type='CrossEntropyLoss')
    with DefaultScope.overwrite_default_scope('mmseg'):
        ref = MODELS.build(ref_cfg).eval()
    conv = load_converter()
    scale = math.log(float(ours.text_encoder.logit_scale))
    ref.load_state_dict(conv.mmovss_to_mmseg(ours.state_dict(), scale),
                        strict=True)
    return ours, ref


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
    ours, ref = build_models(names, args.queries)
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
