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

Agreement (untimed): the window-averaged slide logits (NACLIP: at the
resized input size; SCLIP: after its resize to the original size, ours
resized the same way) within ``--atol`` (1e-4) and the final labels
(>= 99.9% of pixels equal), the tolerances of ``tests/test_parity.py``.
"""
import argparse
import copy
import glob
import importlib
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

METHODS = {
    'naclip': dict(
        module='naclip', cls='NACLIP',
        config='configs/naclip/naclip_vit-b16_pascal_context_60.py',
        pamr_config='configs/naclip/naclip-pamr_vit-b16_pascal_context_60.py',
        class_file='configs/cls_context60.txt',
        kwargs=dict(prob_thd=0.1, logit_scale=40, arch='reduced',
                    attn_strategy='naclip', gaussian_std=5.0)),
    'sclip': dict(
        module='clip_segmentor', cls='CLIPForSegmentation',
        config='configs/sclip/sclip_vit-b16_voc21.py',
        pamr_config=None,
        class_file='configs/cls_voc21.txt',
        kwargs=dict(prob_thd=0.1, logit_scale=65, area_thd=0.1)),
}


def parse_args():
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
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0: torch default)')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='extra key=value overrides of our config')
    return parser.parse_args()


# ----------------------------------------------------------------- weights
def make_random_openai_weights(path: str, seed: int) -> None:
    """A random CLIP ViT-B/16 in OpenAI's state-dict format (float16)."""
    import open_clip
    torch.manual_seed(seed)
    model = open_clip.create_model('ViT-B-16', pretrained=None,
                                   force_quick_gelu=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if '.ln_' in name or name.startswith('ln_') or 'ln_final' in name:
                if name.endswith('weight'):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith('in_proj_bias'):
                p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith('out_proj.bias'):
                p.copy_(0.02 * torch.randn_like(p))
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    state['input_resolution'] = torch.tensor(224)
    state['context_length'] = torch.tensor(77)
    state['vocab_size'] = torch.tensor(49408)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(state, path)


# ------------------------------------------------------------------ models
def build_ours(method: dict, args):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    import mmovss  # noqa: F401
    config = method['pamr_config'] if args.pamr else method['config']
    cfg = Config.fromfile(os.path.join(REPO, config))
    options = {
        'model.backbone.pretrained': args.weights,
        'model.text_encoder.pretrained': args.weights,
        'model.text_encoder.templates': args.templates,
        'model.vocabulary': os.path.join(args.reference,
                                         method['class_file']),
    }
    for item in args.cfg_options:
        key, value = item.split('=', 1)
        options[key] = eval(value, {}, {})  # numbers, tuples, None
    cfg.merge_from_dict(options)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    return model, cfg


def build_reference(method: dict, args):
    sys.path.insert(0, os.path.abspath(args.reference))
    cwd = os.getcwd()
    os.chdir(args.reference)  # relative class-file paths, as in their eval
    try:
        module = importlib.import_module(method['module'])
        # one template while constructing: their text loop is replaced below
        module.openai_imagenet_template = [lambda c: f'a photo of a {c}.']
        kwargs = dict(method['kwargs'])
        if method['module'] == 'naclip':
            kwargs['pamr_steps'] = 10 if args.pamr else 0
        model = getattr(module, method['cls'])(
            clip_path=os.path.abspath(args.weights),
            name_path=method['class_file'], device=torch.device('cpu'),
            slide_stride=112, slide_crop=224, **kwargs)
    finally:
        os.chdir(cwd)
    return model.eval()


def reference_text(ref, names, templates) -> torch.Tensor:
    """The reference code's template ensemble for ``names``."""
    clip = sys.modules['clip']
    rows = []
    with torch.no_grad():
        for name in names:
            tokens = clip.tokenize([t.format(name) for t in templates])
            feats = ref.net.encode_text(tokens)
            feats = feats / feats.norm(dim=-1, keepdim=True)
            feats = feats.mean(dim=0)
            rows.append(feats / feats.norm())
    return torch.stack(rows)


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


def load(model, cfg, path):
    from mmengine.dataset import Compose
    pipeline = Compose([dict(t) for t in cfg.test_pipeline
                        if 'Annotation' not in t['type']])
    sample = pipeline(dict(img_path=path))
    batch = model.data_preprocessor(
        dict(inputs=[sample['inputs']],
             data_samples=[sample['data_samples']]), False)
    return batch['inputs'], batch['data_samples']


def timed(fn):
    """Wall-clock and process CPU seconds (all threads) of ``fn()``."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - start, time.process_time() - cpu, out


def main():
    args = parse_args()
    method = METHODS[args.method]
    if args.pamr and not method['pamr_config']:
        raise SystemExit(f'--pamr: {args.method} runs without PAMR.')
    if args.threads:
        torch.set_num_threads(args.threads)
    if not os.path.isfile(args.weights):
        print(f'writing random OpenAI-format ViT-B/16 weights to '
              f'{args.weights}')
        make_random_openai_weights(args.weights, args.seed)
    ours, cfg = build_ours(method, args)
    ref = build_reference(method, args)
    with torch.no_grad():
        start = time.perf_counter()
        embeds = ours.class_embeddings()
        text_s = time.perf_counter() - start
    names = list(embeds.vocabulary.names)
    ref_names = [line for line in open(os.path.join(
        args.reference, method['class_file'])).read().split('\n')]
    ref_names = [n for line in ref_names for n in line.split(', ')]
    assert [n.strip() for n in ref_names if n.strip()] == names, \
        'class names differ'
    assert ref.query_idx.tolist() == embeds.name_to_class.tolist()
    ref.query_features = embeds.embeds.clone()
    print(f'{args.method}: {len(names)} names, {embeds.num_classes} '
          f'classes; our text embeddings in {text_s:.1f} s (cached after the '
          f'first run)')
    if args.check_text:
        from mmovss.vocab import get_templates
        n = min(args.check_text, len(names))
        theirs = reference_text(ref, names[:n], get_templates(args.templates))
        diff = (theirs - embeds.embeds[:n]).abs().max().item()
        print(f'text embeddings of {n} name(s), reference code vs ours: '
              f'max abs diff {diff:.2e}')

    files = image_files(args)
    rows = []
    with torch.no_grad():
        for i, path in enumerate(files):
            inputs, samples = load(ours, cfg, path)
            metas = [s.metainfo for s in samples]
            if i == 0:  # warm-up (caches, allocator, thread pools)
                ours.predict(inputs, copy.deepcopy(samples))
                ref.predict(inputs, copy.deepcopy(samples))
            times = {'ours': [], 'ref': []}
            cpu = {'ours': [], 'ref': []}
            outs = {}
            for r in range(args.repeats):
                order = ('ours', 'ref') if (i + r) % 2 == 0 else \
                    ('ref', 'ours')
                for who in order:
                    model = ours if who == 'ours' else ref
                    t, c, out = timed(lambda: model.predict(
                        inputs, copy.deepcopy(samples)))
                    times[who].append(t)
                    cpu[who].append(c)
                    outs[who] = out[0].pred_sem_seg.data[0]
            agree = (outs['ours'] == outs['ref']).float().mean().item()
            # slide logits, untimed
            sims = ours.slide_inference(inputs, metas)
            if args.method == 'naclip':
                ref_sims = ref.forward_slide(inputs, 112, 224)
            else:
                ref_sims = ref.forward_slide(inputs, metas, 112, 224)
                sims = F.interpolate(sims, size=ref_sims.shape[-2:],
                                     mode='bilinear', align_corners=False)
            diff = (sims - ref_sims).abs().max().item()
            windows = len(ours.crop_boxes(inputs.shape[2:], (224, 224),
                                          (112, 112)))
            row = dict(image=os.path.basename(path),
                       size=tuple(metas[0]['ori_shape'][:2]),
                       input=tuple(inputs.shape[2:]), windows=windows,
                       ours=statistics.median(times['ours']),
                       ref=statistics.median(times['ref']),
                       ours_cpu=statistics.median(cpu['ours']),
                       ref_cpu=statistics.median(cpu['ref']),
                       logit_diff=diff, agree=agree)
            rows.append(row)
            print(f"{row['image']} {row['size']} -> {row['input']}, "
                  f"{windows} windows: ours {row['ours']:.2f} s, reference "
                  f"{row['ref']:.2f} s (x{row['ours'] / row['ref']:.2f}; "
                  f"CPU time x{row['ours_cpu'] / row['ref_cpu']:.2f}); "
                  f'slide logits max |diff| {diff:.1e}, labels equal '
                  f'{100 * agree:.3f}%', flush=True)
    ours_s = statistics.median(r['ours'] for r in rows)
    ref_s = statistics.median(r['ref'] for r in rows)
    ours_cpu = statistics.median(r['ours_cpu'] for r in rows)
    ref_cpu = statistics.median(r['ref_cpu'] for r in rows)
    worst_diff = max(r['logit_diff'] for r in rows)
    worst_agree = min(r['agree'] for r in rows)
    label = args.method + (' + PAMR' if args.pamr else '')
    print(f'\n{label}, {len(rows)} images, CPU float32, '
          f'{torch.get_num_threads()} threads, median s/image: ours '
          f'{ours_s:.3f}, reference {ref_s:.3f}, ratio '
          f'{ours_s / ref_s:.3f}')
    print(f'process CPU time (all threads), median s/image: ours '
          f'{ours_cpu:.3f}, reference {ref_cpu:.3f}, ratio '
          f'{ours_cpu / ref_cpu:.3f}')
    ok = worst_diff <= args.atol and worst_agree >= 0.999
    print(f'agreement: slide logits max |diff| {worst_diff:.1e} (tolerance '
          f'{args.atol:g}), labels equal >= {100 * worst_agree:.3f}% of '
          f'pixels (tolerance 99.9%): {"OK" if ok else "FAILED"}')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
