"""Times mmovss against a published training-free implementation, side by side.

Runs our :class:`~mmovss.models.segmentors.TrainingFreeSegmentor` and the
published code of the same method (NACLIP, Hajimiri et al., WACV 2025:
github.com/sinahmr/NACLIP; SCLIP, Wang et al., ECCV 2024:
github.com/wangf3014/SCLIP) in one process, on CPU, in float32, with the
*same* CLIP weights, the same class-name file and the same preprocessed
images, at the published protocol (NACLIP ``cfg_context60.py``: short side
336, slide crop 224 / stride 112, logit scale 40, ``prob_thd`` 0.1, PAMR off
unless ``--pamr``; SCLIP ``cfg_voc21.py``: short side 336, crop 224 /
stride 112, logit scale 65, ``prob_thd`` 0.1, ``area_thd`` 0.1).

Nothing of the reference code is shipped with mmovss: fetch it yourself and
pass its directory::

    git clone https://github.com/sinahmr/NACLIP /tmp/refs/naclip
    git clone https://github.com/wangf3014/SCLIP /tmp/refs/sclip

    python tools/analysis_tools/compare_reference_training_free.py \\
        naclip /tmp/refs/naclip --threads 2
    python tools/analysis_tools/compare_reference_training_free.py \\
        sclip /tmp/refs/sclip --threads 2

Weights: ``--weights`` names a CLIP ViT-B/16 state dict in OpenAI's format
(OpenAI's own ``ViT-B-16.pt`` works); if the file does not exist, a random
one is written there (open_clip ``ViT-B-16``, QuickGELU, seed ``--seed``,
random LayerNorm affine and attention biases so that every parameter
matters, rounded to float16 as OpenAI ships its files, so both codes read
identical float32 values).

Text: the per-image time excludes text encoding. Both models use the
embeddings of *our* text encoder (80 ImageNet templates by default, cached on
disk by mmovss): the reference model is built with one template (to skip its
several-minute text loop) and its ``query_features`` are then replaced by
ours. ``--check-text N`` encodes the first N names with the reference text
code and the same templates and compares.

Timing: for every image (after one warm-up image), the two models run
alternately (which one goes first alternates too), so load from other
processes hits both alike; the report gives the median seconds per image
(``predict`` on the preprocessed batch: sliding windows, resizing and all
post-processing) and the ratio ours / reference, in wall-clock time and in
process CPU time (all threads; less sensitive to other processes on a
shared machine).

``--cfg-options key=value ...`` overrides our config; values are read as
Python literals (numbers, strings, tuples, lists, booleans, None), never
evaluated. The models are built by
:mod:`mmovss.benchmarking.published_reference`.

CorrCLIP and Trident (whose official codes ship their own ``open_clip``)
run in a subprocess, timed around the official segmentor's ``predict``
(:mod:`mmovss.benchmarking.training_free_official`), on the image and tiny
models of their parity fixtures (the generators' stage recording assumes
the tiny towers, so ViT-B/16 is not offered there)::

    python tools/analysis_tools/compare_reference_training_free.py \\
        corrclip /path/to/CorrCLIP --dino-repo /path/to/dino --threads 1
    python tools/analysis_tools/compare_reference_training_free.py \\
        trident /path/to/Trident --dino-repo /path/to/dino --threads 1

Agreement (untimed): the window-averaged slide logits (NACLIP: at the
resized input size; SCLIP: after its resize to the original size, ours
resized the same way) within ``--atol`` (1e-4) and the final labels
(>= 99.9% of pixels equal), the tolerances of ``tests/test_parity.py``.

``--dtype bf16`` runs ours with ``test_cfg.inference_dtype='bf16'`` (image
tower cast once, :mod:`mmovss.models.utils.low_precision`) against the
reference in float32, the comparison of issue #21's goal on a CPU with a
bf16 matrix engine (ratio ours bf16 / reference fp32); it is judged by the
agreement rule of docs/benchmarks.md, >= 99.5% of the labels equal to the
reference's float32 labels (the logit difference is reported, not judged)::

    python tools/analysis_tools/compare_reference_training_free.py \\
        naclip /tmp/refs/naclip --threads 1 --dtype bf16

``--cast-text`` (with ``--dtype bf16``) casts our text tower too
(``test_cfg.cast_text_encoder=True``): our class embeddings are then encoded
in bf16 (the report gives their cold time and their largest difference to
float32), while the reference keeps the float32 embeddings of a float32
build of the same config, so the label agreement covers both towers.
"""
import argparse
import copy
import glob
import os
import statistics
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)  # runs from a clone without installation

from mmovss.benchmarking import timed_call  # noqa: E402
from mmovss.benchmarking.published_reference import (  # noqa: E402
    METHODS,
    build_ours,
    build_reference,
    compare_on_image,
    load_image,
    make_random_openai_weights,
    our_config,
    reference_text,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('method', choices=sorted(METHODS))
    parser.add_argument('reference', help='directory of the fetched '
                        'reference repository')
    parser.add_argument('--weights', default='/tmp/refs/vit-b16_random_'
                        'openai-format.pt', help='OpenAI-format ViT-B/16 '
                        'state dict (written with random weights if absent)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--images', nargs='+', default=[os.path.join(
        REPO, '..', 'shared', 'realdata', 'coco_stuff164k', 'images',
        'val2017')], help='image files or directories')
    parser.add_argument('--num-images', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=1,
                        help='timed passes over the images')
    parser.add_argument('--templates', default='imagenet',
                        help="our text templates ('imagenet': the 80 of "
                        "both codes; 'single' for a quick run)")
    parser.add_argument('--pamr', action='store_true',
                        help='NACLIP with PAMR (pamr_steps=10)')
    parser.add_argument('--check-text', type=int, default=1,
                        help='names encoded by the reference text code too')
    parser.add_argument('--atol', type=float, default=1e-4)
    parser.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'],
                        help='our precision (test_cfg.inference_dtype; the '
                        'reference stays float32): bf16 is judged by the '
                        'agreement rule, >= 99.5%% of labels equal to the '
                        "reference's float32 labels")
    parser.add_argument('--cast-text', action='store_true',
                        help='with --dtype bf16: cast our text tower too '
                        '(test_cfg.cast_text_encoder); the reference keeps '
                        'float32 text embeddings')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0: torch default)')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='extra key=value overrides of our config '
                        '(values read as Python literals, never evaluated)')
    args = parser.parse_args(argv)
    if args.cast_text and args.dtype == 'fp32':
        parser.error('--cast-text casts the text tower to the low precision: '
                     'pass --dtype bf16 with it.')
    return args


def our_options(args):
    """``--cfg-options`` of our config, with ``--dtype`` as its
    ``test_cfg.inference_dtype``."""
    options = list(args.cfg_options)
    if args.dtype != 'fp32':
        options.append(f'model.test_cfg.inference_dtype={args.dtype}')
    if args.cast_text:
        options.append('model.test_cfg.cast_text_encoder=True')
    return options


def reference_text_embeddings(args, ours_embeds):
    """The class embeddings the reference model gets: ours, or with
    ``--cast-text`` those of a float32 build of the same config (our
    ``--cfg-options`` without the precision), so that the reference stays
    float32 throughout."""
    if not args.cast_text:
        return ours_embeds
    cfg = our_config(args.method, args.reference, args.weights,
                     args.templates, args.pamr, args.cfg_options)
    with torch.no_grad():
        return build_ours(cfg).class_embeddings()


# ------------------------------------------------------------------- data
def image_files(args):
    files = []
    for item in args.images:
        if os.path.isdir(item):
            files += sorted(glob.glob(os.path.join(item, '*.jpg')) +
                            glob.glob(os.path.join(item, '*.png')))
        else:
            files.append(item)
    if not files:
        raise SystemExit(f'No images in {args.images}.')
    return files[:args.num_images]


def official_main(method, argv):
    """CorrCLIP / Trident: the official segmentor in a subprocess (its own
    ``open_clip``), see :mod:`mmovss.benchmarking.training_free_official`."""
    import json

    from mmovss.benchmarking.training_free_official import compare_official, load_average
    parser = argparse.ArgumentParser(
        prog=f'compare_reference_training_free.py {method}',
        description='one cold predict of the official code and of ours on '
        "the method's parity-fixture image, same weights")
    parser.add_argument('reference', help='the official clone (CorrCLIP: '
                        'the repository root holding CorrCLIPv1/)')
    parser.add_argument('--dino-repo', required=True, help='a folder with '
                        "DINO's vision_transformer.py and utils.py")
    parser.add_argument('--shared', default=os.path.join(
        REPO, '..', 'shared', 'parity', 'A'), help='folder of '
        'clip_tiny_openai_format.pt and 000000001584.jpg')
    parser.add_argument('--threads', type=int, default=0)
    args = parser.parse_args(argv)
    result = compare_official(method, REPO, os.path.abspath(args.reference),
                              os.path.abspath(args.dino_repo),
                              os.path.abspath(args.shared), args.threads)
    result['load_average'] = load_average()
    result['threads'] = args.threads or torch.get_num_threads()
    print(json.dumps(result, indent=1))
    print(f"{method}: ours {result['ours']['seconds']:.3f} s, official "
          f"{result['official']['seconds']:.3f} s per image; ratio ours / "
          f"official {result['ratio_wall']:.2f} (wall), "
          f"{result['ratio_cpu']:.2f} (CPU); load {result['load_average']}")
    return 0


def main():
    from mmovss.benchmarking.training_free_official import OFFICIAL_CLASSES
    if len(sys.argv) > 1 and sys.argv[1] in OFFICIAL_CLASSES:
        return official_main(sys.argv[1], sys.argv[2:])
    args = parse_args()
    method = METHODS[args.method]
    try:
        cfg = our_config(args.method, args.reference, args.weights,
                         args.templates, args.pamr, our_options(args))
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.isfile(args.weights):
        print(f'writing random OpenAI-format ViT-B/16 weights to '
              f'{args.weights}')
        make_random_openai_weights(args.weights, args.seed)
    ours = build_ours(cfg)
    ref = build_reference(args.method, args.reference, args.weights,
                          args.pamr)
    with torch.no_grad():
        text_s, _, ours_embeds = timed_call(ours.class_embeddings)
    embeds = reference_text_embeddings(args, ours_embeds)
    names = list(embeds.vocabulary.names)
    ref_names = [line for line in open(os.path.join(
        args.reference, method['class_file'])).read().split('\n')]
    ref_names = [n for line in ref_names for n in line.split(', ')]
    assert [n.strip() for n in ref_names if n.strip()] == names, \
        'class names differ'
    assert ref.query_idx.tolist() == embeds.name_to_class.tolist()
    ref.query_features = embeds.embeds.clone()
    text_dtype = 'bf16' if args.cast_text else 'float32'
    print(f'{args.method}: {len(names)} names, {embeds.num_classes} '
          f'classes; our {text_dtype} text embeddings in {text_s:.1f} s '
          f'(cached after the first run)')
    if args.cast_text:
        diff = (ours_embeds.embeds - embeds.embeds).abs().max().item()
        print(f'our bf16 text embeddings vs the float32 ones the reference '
              f'gets: max abs diff {diff:.2e}')
    if args.check_text:
        from mmovss.vocab import get_templates
        n = min(args.check_text, len(names))
        theirs = reference_text(ref, names[:n], get_templates(args.templates))
        diff = (theirs - embeds.embeds[:n]).abs().max().item()
        print(f'text embeddings of {n} name(s), reference code vs ours: '
              f'max abs diff {diff:.2e}')

    rows = []
    for i, path in enumerate(image_files(args)):
        inputs, samples = load_image(ours, cfg, path)
        if i == 0:  # warm-up (caches, allocator, thread pools)
            with torch.no_grad():
                ours.predict(inputs, copy.deepcopy(samples))
                ref.predict(inputs, copy.deepcopy(samples))
        row = compare_on_image(args.method, ours, ref, inputs, samples,
                               args.repeats, first=i)
        row['image'] = os.path.basename(path)
        rows.append(row)
        print(f"{row['image']} {row['size']} -> {row['input']}, "
              f"{row['windows']} windows: ours {row['ours']:.2f} s, "
              f"reference {row['ref']:.2f} s "
              f"(x{row['ours'] / row['ref']:.2f}; CPU time "
              f"x{row['ours_cpu'] / row['ref_cpu']:.2f}); slide logits max "
              f"|diff| {row['logit_diff']:.1e}, labels equal "
              f"{100 * row['agree']:.3f}%", flush=True)
    ours_s = statistics.median(r['ours'] for r in rows)
    ref_s = statistics.median(r['ref'] for r in rows)
    ours_cpu = statistics.median(r['ours_cpu'] for r in rows)
    ref_cpu = statistics.median(r['ref_cpu'] for r in rows)
    worst_diff = max(r['logit_diff'] for r in rows)
    worst_agree = min(r['agree'] for r in rows)
    label = args.method + (' + PAMR' if args.pamr else '')
    run = (getattr(ours, 'inference_precision', None) or {}).get('run', 'fp32')
    print(f'\n{label}, {len(rows)} images, CPU, ours {run} vs reference '
          f'float32, '
          f'{torch.get_num_threads()} threads, median s/image: ours '
          f'{ours_s:.3f}, reference {ref_s:.3f}, ratio '
          f'{ours_s / ref_s:.3f}')
    print(f'process CPU time (all threads), median s/image: ours '
          f'{ours_cpu:.3f}, reference {ref_cpu:.3f}, ratio '
          f'{ours_cpu / ref_cpu:.3f}')
    ok, rule = agreement_verdict(run, worst_diff, worst_agree, args.atol)
    print(f'agreement: slide logits max |diff| {worst_diff:.1e}, labels '
          f'equal >= {100 * worst_agree:.3f}% of pixels ({rule}): '
          f'{"OK" if ok else "FAILED"}')
    return 0 if ok else 1


def agreement_verdict(run: str, logit_diff: float, labels_equal: float,
                      atol: float):
    """Whether ours agrees with the reference, and the rule applied.

    float32: the parity tolerances of ``tests/test_parity.py`` (slide logits
    within ``atol``, >= 99.9% of labels equal); a low precision: the
    agreement rule of docs/benchmarks.md (>= 99.5% of labels equal to the
    float32 labels; its logits differ by the precision's rounding).
    """
    if run == 'fp32':
        return (logit_diff <= atol and labels_equal >= 0.999,
                f'tolerance: logits {atol:g}, labels 99.9%')
    from mmovss.benchmarking.precision import LABEL_AGREEMENT
    return (labels_equal >= LABEL_AGREEMENT,
            f'{run} rule: labels {100 * LABEL_AGREEMENT:g}%')


if __name__ == '__main__':
    sys.exit(main())
