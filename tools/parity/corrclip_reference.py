"""Parity fixture of CorrCLIP: runs the published CorrCLIPv1 code on CPU.

Runs ``CorrCLIPSegmentation`` of github.com/zdk258/CorrCLIP
(``CorrCLIPv1/corrclip_segmentor.py`` with its modified
``open_clip/transformer.py``) on a tiny random CLIP in OpenAI's state-dict
format (the one of ``../shared/parity/A``), a tiny random DINO ViT built
with DINO's own ``vision_transformer.py`` (github.com/facebookresearch/dino;
``torch.hub.load`` is redirected to it) and FIXED class-agnostic masks read
from a mask file in CorrCLIP's published format (``mask_generator=None``,
``instance_mask_path``), so no mask generator's weights matter. Writes, in
the format of ``../shared/parity/A`` (one ``corrclip.json`` with every
parameter and ``corrclip.npz`` with the arrays, README in
tests/data/parity_corrclip_trident/):

* ``text_embeddings`` / ``query_idx``;
* first window: ``crop0_vfm_features`` (normalised DINO ``q + k``),
  ``crop0_region_partition`` (the merged masks on the DINO grid, relabelled
  by first occurrence), ``crop0_attn_weights`` (scope-reconstructed
  attention), ``crop0_branches`` (main / spatial / semantic branch after
  ``ln_post``, each ``@ proj``), ``crop0_patch_features_unnormalized``;
* ``ori_logits``: the window average resized to the original size (before
  the logit scale), subsampled by ``ori_logits_subsample``;
* ``pred``: the final labels (after the map correction).

Run on CPU in float32: the reference casts images and models to float16
(``.half()``); those casts are made no-ops (recorded in the JSON). The
reference's spatial branch has no layer choice for a 3-block tower
(``NUM_SPATIAL = num_layers - 4`` selects no block), so its line is
replaced by ``NUM_SPATIAL = 1`` (block 0), recorded in
``tiny_model_adaptations``.

Needs, for the generator only: scikit-learn (the reference's DBSCAN),
mmsegmentation, ftfy/regex (the reference tokenizer); ``transformers`` and
``openpyxl`` are stubbed (only imported by the reference).

Example::

    python tools/parity/corrclip_reference.py \
        --official-repo /path/to/CorrCLIP --dino-repo /path/to/dino \
        --clip-weights ../shared/parity/A/clip_tiny_openai_format.pt \
        --image ../shared/parity/A/000000001584.jpg \
        --seed 0 --out tests/data/parity_corrclip_trident
"""
import argparse
import contextlib
import hashlib
import inspect
import json
import os
import os.path as osp
import random
import subprocess
import sys
import textwrap
import types

import numpy as np
import torch
import torch.nn as nn

CLASSES = [['sky', 'road', 'building'], ['bus'], ['car'], ['person'],
           ['tree']]
DINO_CFG = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2,
                mlp_ratio=4, qkv_bias=True, img_size=[112])


def stub(name: str, **attrs):
    """An empty module ``name`` unless it imports for real."""
    try:
        __import__(name)
        return
    except ImportError:
        pass
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def install_mmcv_compat():
    """mmovss's mmcv-lite stand-ins (``mmovss/compat.py``), loaded by path.

    Importing the ``mmovss`` package would import the installed open_clip,
    which the reference's own ``open_clip`` package must replace.
    """
    import importlib.util
    path = osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'mmovss', 'compat.py')
    spec = importlib.util.spec_from_file_location('_mmovss_compat', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.install()


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def record_returns(obj, name: str, store: list) -> None:
    """Replaces ``obj.<name>`` by a wrapper that appends a copy of each output to ``store``."""
    original = getattr(obj, name)

    def recording(*a, **k):
        out = original(*a, **k)
        store.append(out.detach().clone())
        return out

    setattr(obj, name, recording)


@contextlib.contextmanager
def float32_reference(dino: nn.Module):
    """The reference's float16 casts as no-ops and ``torch.hub.load`` returning ``dino``."""
    half_tensor, half_module = torch.Tensor.half, nn.Module.half
    hub_load = torch.hub.load
    torch.Tensor.half = lambda self, *a, **k: self
    nn.Module.half = lambda self, *a, **k: self
    torch.hub.load = lambda *a, **k: dino
    try:
        yield
    finally:
        torch.Tensor.half, nn.Module.half = half_tensor, half_module
        torch.hub.load = hub_load


def reference_batch(model, image: str, short_side: int) -> dict:
    """The image through mmseg's pipeline, as the references' configs, and their preprocessor."""
    from mmengine.dataset import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    import mmseg.datasets  # noqa: F401  (registers the transforms)
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(2048, short_side), keep_ratio=True),
        dict(type='PackSegInputs')
    ])
    sample = pipeline(dict(img_path=osp.abspath(image)))
    return model.data_preprocessor(
        dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]), False)


def git_commit(path: str) -> str:
    try:
        return subprocess.check_output(['git', '-C', path, 'rev-parse', 'HEAD'],
                                       text=True,
                                       stderr=subprocess.DEVNULL).strip()
    except Exception:
        return 'unknown (not a git checkout)'


def synthetic_masks(h: int, w: int) -> np.ndarray:
    """Fixed instance-mask ids (CorrCLIP format: 0 = unsegmented).

    Rectangles and ellipses at fractions of the image, some touching, some
    nested, with uncovered gaps, so that windows hold several regions.
    """
    yy, xx = np.mgrid[0:h, 0:w]
    ids = np.zeros((h, w), np.int32)
    boxes = [(0.0, 0.3, 0.0, 1.0), (0.3, 0.55, 0.05, 0.45),
             (0.3, 0.55, 0.45, 0.95), (0.6, 1.0, 0.0, 0.35),
             (0.62, 0.95, 0.4, 0.7), (0.7, 1.0, 0.72, 1.0)]
    for k, (y1, y2, x1, x2) in enumerate(boxes, start=1):
        ids[(yy >= y1 * h) & (yy < y2 * h) & (xx >= x1 * w) &
            (xx < x2 * w)] = k
    for k, (cy, cx, ry, rx) in enumerate(
            [(0.42, 0.25, 0.08, 0.12), (0.8, 0.55, 0.1, 0.08),
             (0.15, 0.7, 0.1, 0.2)], start=len(boxes) + 1):
        ids[((yy - cy * h) / (ry * h))**2 +
            ((xx - cx * w) / (rx * w))**2 <= 1] = k
    return ids


def canonical(ids: np.ndarray) -> np.ndarray:
    """Region ids relabelled 0, 1, ... by first occurrence (row-major)."""
    _, first, inverse = np.unique(ids.ravel(), return_index=True,
                                  return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse].reshape(ids.shape).astype(np.int16)


def randomize(module: nn.Module, seed: int):
    """Random LayerNorm affine and biases (every parameter matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('norm1.weight') or name.endswith('norm2.weight') \
                    or name == 'norm.weight':
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith('bias'):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif name in ('cls_token', 'pos_embed'):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


class Recorder:
    """Records the reference's intermediate tensors (first window only)."""

    def __init__(self):
        self.calls = []
        self.stages = {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True,
                        help='clone of github.com/zdk258/CorrCLIP (or its '
                        'CorrCLIPv1 folder)')
    parser.add_argument('--dino-repo', required=True,
                        help='clone of github.com/facebookresearch/dino '
                        '(vision_transformer.py, utils.py)')
    parser.add_argument('--clip-weights', required=True,
                        help='tiny CLIP in OpenAI format (../shared/parity/A/'
                        'clip_tiny_openai_format.pt)')
    parser.add_argument('--image', required=True, help='RGB image file')
    parser.add_argument('--official-commit', default=None,
                        help='commit of the CorrCLIP clone when it is not a '
                        'git checkout (recorded in the JSON)')
    parser.add_argument('--dino-commit', default=None,
                        help='commit of the DINO clone when it is not a git '
                        'checkout')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--short-side', type=int, default=224)
    parser.add_argument('--crop', type=int, default=112)
    parser.add_argument('--stride', type=int, default=56)
    parser.add_argument('--prob-thd', type=float, default=0.15)
    parser.add_argument('--logit-scale', type=float, default=40.0)
    parser.add_argument('--ori-logits-subsample', type=int, default=16)
    parser.add_argument('--row-subsample', type=int, default=2,
                        help='keep every n-th token of the (M, M) attention '
                        'and of the branches (fixture size)')
    args = parser.parse_args()

    root = osp.abspath(args.official_repo)
    if osp.isdir(osp.join(root, 'CorrCLIPv1')):
        root = osp.join(root, 'CorrCLIPv1')
    if not osp.isfile(osp.join(root, 'corrclip_segmentor.py')):
        sys.exit(f'{root} has no corrclip_segmentor.py')
    os.makedirs(args.out, exist_ok=True)
    seed_everything(args.seed)

    # --- the reference's imports (its own open_clip package first)
    for name in list(sys.modules):
        if name == 'open_clip' or name.startswith('open_clip.'):
            del sys.modules[name]
    sys.path.insert(0, root)
    sys.path.insert(1, osp.abspath(args.dino_repo))
    stub('transformers', AutoImageProcessor=None,
         Mask2FormerForUniversalSegmentation=None)
    stub('openpyxl')
    install_mmcv_compat()
    cwd = os.getcwd()
    os.chdir(root)  # the reference imports its prompts/ relative to it
    import corrclip_segmentor as ref
    import open_clip
    import open_clip.transformer as oc_transformer
    import vision_transformer as dino_vit
    from open_clip.model import build_model_from_openai_state_dict
    os.chdir(cwd)

    # --- tiny-model adaptation of the spatial branch (3 blocks)
    vt = oc_transformer.VisionTransformer
    src = textwrap.dedent(inspect.getsource(vt.forward))
    line = 'NUM_SPATIAL = num_layers - 4'
    assert src.count(line) == 1, 'reference forward changed'
    src = src.replace(line, 'NUM_SPATIAL = 1')
    # compiled in the module's own globals (so its `F` can be recorded)
    exec(compile(src, oc_transformer.__file__, 'exec'),
         oc_transformer.__dict__)
    vt.forward = oc_transformer.__dict__.pop('forward')

    # --- tiny CLIP (float32) and tiny DINO
    state = torch.load(args.clip_weights, map_location='cpu',
                       weights_only=True)
    state = {k: v.float() for k, v in state.items()}
    clip = build_model_from_openai_state_dict(dict(state)).float().eval()
    seed_everything(args.seed)
    from functools import partial
    dino = dino_vit.VisionTransformer(
        norm_layer=partial(nn.LayerNorm, eps=1e-6), **DINO_CFG)
    randomize(dino, args.seed + 1)
    # stored in float16, run in float32 (lossless upcast)
    dino_state = {k: v.half() for k, v in dino.state_dict().items()}
    dino.load_state_dict({k: v.float() for k, v in dino_state.items()})
    dino.eval()
    dino_file = 'dino_tiny_vit8.pth'
    torch.save(dino_state, osp.join(args.out, dino_file))

    # --- inputs: class file ('; ' syntax), fixed masks
    image_stem = osp.splitext(osp.basename(args.image))[0]
    class_file = osp.join(args.out, 'classes_corrclip.txt')
    with open(class_file, 'w') as f:
        f.write('\n'.join('; '.join(c) for c in CLASSES))
    from PIL import Image
    with Image.open(args.image) as img:
        ori_w, ori_h = img.size
    mask_dir = osp.join(args.out, 'corrclip_masks')
    os.makedirs(mask_dir, exist_ok=True)
    masks = synthetic_masks(ori_h, ori_w)
    np.savez_compressed(osp.join(mask_dir, image_stem + '.npz'),
                        instance_mask=masks)

    # --- build the reference segmentor (float16 casts as no-ops)
    ref.create_model = lambda *a, **k: clip
    torch_bmm = torch.bmm
    with float32_reference(dino):
        model = ref.CorrCLIPSegmentation(
            clip_type='tiny', model_type='tiny', dino_type='dino_tiny',
            name_path=class_file, device=torch.device('cpu'),
            prob_thd=args.prob_thd, logit_scale=args.logit_scale,
            slide_stride=args.stride, slide_crop=args.crop,
            instance_mask_path=mask_dir, mask_generator=None)
        model.eval()

        # --- recorders
        rec = Recorder()
        ref_F = oc_transformer.F

        class RecordingF:
            def __getattr__(self, name):
                return getattr(ref_F, name)

            @staticmethod
            def interpolate(x, *a, **k):
                out = ref_F.interpolate(x, *a, **k)
                rec.calls.append(('interpolate', x.detach().clone()))
                return out

        oc_transformer.F = RecordingF()
        dino_qkv = []
        dino.blocks[-1].attn.qkv.register_forward_hook(
            lambda m, i, o: dino_qkv.append(o.detach().clone()))
        ln_post_out = []
        clip.visual.ln_post.register_forward_hook(
            lambda m, i, o: ln_post_out.append(o.detach().clone()))
        bmm_args = []

        def recording_bmm(a, b, *rest, **kw):
            if a.dim() == 3 and a.shape[0] == 2 and a.shape[1] == a.shape[2]:
                bmm_args.append(a.detach().clone())
            return torch_bmm(a, b, *rest, **kw)

        torch.bmm = recording_bmm
        crop_features, slide_out = [], []
        record_returns(clip, 'encode_image', crop_features)
        record_returns(model, 'forward_slide', slide_out)

        # --- data through mmseg's pipeline, as the reference's configs
        batch = reference_batch(model, args.image, args.short_side)
        try:
            with torch.no_grad():
                out = model.predict(batch['inputs'], batch['data_samples'])
        finally:
            torch.bmm = torch_bmm

    inputs = batch['inputs']
    resized_hw = list(inputs.shape[2:])
    boxes = []
    h, w = resized_hw
    hg = max(h - args.crop + args.stride - 1, 0) // args.stride + 1
    wg = max(w - args.crop + args.stride - 1, 0) // args.stride + 1
    for hi in range(hg):
        for wi in range(wg):
            y2 = min(hi * args.stride + args.crop, h)
            x2 = min(wi * args.stride + args.crop, w)
            boxes.append([max(y2 - args.crop, 0), y2,
                          max(x2 - args.crop, 0), x2])
    num_windows = len(boxes)
    assert len(crop_features) == num_windows, len(crop_features)

    # first window's stages
    qkv = dino_qkv[0][0]
    n_tok = qkv.shape[0]
    qkv = qkv.reshape(n_tok, 3, -1)
    vfm = torch.nn.functional.normalize((qkv[:, 0] + qkv[:, 1])[1:], dim=-1)
    # interpolate calls per window: masks->vfm grid, merged->CLIP grid,
    # values (main+spatial), region masks->vfm grid
    merged = rec.calls[1][1][:, 0].int()[0].numpy()
    proj = clip.visual.proj.detach()
    branches = ln_post_out[0] @ proj  # (3, M, D)
    s, r = args.ori_logits_subsample, args.row_subsample
    arrays = dict(
        text_embeddings=model.query_features.float().numpy(),
        query_idx=model.query_idx.numpy().astype(np.int16),
        crop0_vfm_features=vfm.numpy(),
        crop0_region_partition=canonical(merged),
        crop0_attn_weights=bmm_args[0][0].float()[::r].numpy(),
        crop0_branches=branches[:, ::r].numpy(),
        crop0_patch_features_unnormalized=crop_features[0][0].numpy(),
        ori_logits=slide_out[0][0][:, ::s, ::s].numpy(),
        pred=out[0].pred_sem_seg.data[0].numpy().astype(np.int16),
    )
    np.savez_compressed(osp.join(args.out, 'corrclip.npz'), **arrays)

    def sha(path):
        with open(path, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()

    query_words, _ = ref.get_cls_idx(class_file)
    meta = dict(
        method='corrclip',
        reference_repo='zdk258/CorrCLIP',
        reference_commit=args.official_commit or git_commit(root),
        reference_files=['CorrCLIPv1/corrclip_segmentor.py',
                         'CorrCLIPv1/open_clip/transformer.py '
                         '(VisionTransformer.forward)'],
        dino_repo='facebookresearch/dino',
        dino_commit=args.dino_commit or git_commit(args.dino_repo),
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
        seed=args.seed,
        weights_file=osp.basename(args.clip_weights),
        weights_sha256=sha(args.clip_weights),
        dino_weights_file=dino_file,
        dino_cfg=dict(DINO_CFG, norm_eps=1e-6,
                      timm_equivalent='vit_small_patch8_224.dino with '
                      'embed_dim/depth/num_heads/img_size overridden'),
        dino_storage_dtype='float16 (run in float32, exact upcast)',
        compute_dtype='float32, CPU (the reference .half() casts made '
        'no-ops)',
        image_file=osp.basename(args.image),
        original_hw=[ori_h, ori_w],
        resized_hw=resized_hw,
        resize=dict(pipeline=f'mmseg Resize(scale=(2048, {args.short_side}),'
                    ' keep_ratio=True)'),
        normalization=dict(mean=[122.771, 116.746, 104.094],
                           std=[68.501, 66.632, 70.323], order='RGB'),
        vfm_normalization='x/255 with ImageNet mean/std (reference: '
        'UnNormalize(CLIP) then Normalize(ImageNet))',
        class_file=osp.basename(class_file),
        class_file_syntax="one class per line, names separated by '; ' "
        '(CorrCLIP get_cls_idx); line 0 = background',
        classes=CLASSES,
        query_words=query_words,
        templates='openai_imagenet_template (80, prompts/imagenet_template.py)',
        mask_dir=osp.basename(mask_dir),
        mask_format="<stem>.npz with `instance_mask` (H, W) int32 at the "
        'original size, 0 = unsegmented (CorrCLIP published format)',
        logit_scale=args.logit_scale,
        prob_thd=args.prob_thd,
        slide=dict(crop=args.crop, stride=args.stride,
                   crop_windows_y1y2x1x2=boxes),
        corrclip=dict(tau=4.0, merge_eps=0.2, min_samples=1, alpha=1.0,
                      beta=0.5, spatial_layers=[0],
                      vfm_features='q + k of the last DINO block'),
        tiny_model_adaptations=dict(
            spatial_layers=dict(
                official='NUM_SPATIAL = 5 / 12 / 28 for 12 / 24 / 32 blocks '
                '(blocks L-2-NUM_SPATIAL .. L-3); else num_layers - 4, '
                'which selects no block',
                used='NUM_SPATIAL = 1: block 0 of the 3-block tower')),
        ori_logits_subsample=s,
        row_subsample=r,
        array_notes=dict(
            crop0_region_partition='merged masks on the DINO grid of window '
            '0 (input of the reference interpolate to the CLIP grid), '
            'relabelled 0,1,.. by first row-major occurrence',
            crop0_attn_weights='rows [::row_subsample] of the (M, M) '
            'softmax(4 S) with the reconstructed scope, window 0, M = DINO '
            'patches',
            crop0_branches='(3, M, D)[:, ::row_subsample]: ln_post(main), '
            'ln_post(spatial), ln_post(semantic), each @ proj, before the '
            'weighted sum',
            crop0_patch_features_unnormalized='(M, D) ln_post(main) + 1.0 '
            'ln_post(spatial) + 0.5 ln_post(semantic) @ proj',
            ori_logits='window-averaged cosine similarities resized '
            'bilinearly to the original size, [:, ::s, ::s]',
            pred='labels after prob_thd and the map correction'),
        stubs=['transformers (AutoImageProcessor, Mask2Former...: unused)',
               'openpyxl (myutils excel logging: unused)'],
    )
    with open(osp.join(args.out, 'corrclip.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    sizes = {k: v.nbytes for k, v in arrays.items()}
    print(json.dumps(sizes, indent=1))
    print('windows', num_windows, 'regions in window 0:',
          int(arrays['crop0_region_partition'].max()) + 1,
          'pred classes', np.unique(arrays['pred']).tolist())
    del open_clip


if __name__ == '__main__':
    main()
