"""Runs the released CAT-Seg code on CPU with tiny random weights; writes a fixture.

    python tools/parity/catseg_reference.py --official-repo /path/to/CAT-Seg \
        --detectron2 /path/to/detectron2 --seed 0 --out tests/data/official_parity/catseg/seed0

The official model is built from the repository's ``configs/vitb_384.yaml``
(plus ``eval.sh``'s ``POOLING_SIZES [1,1]``) with tiny widths
(:data:`TINY`, :data:`HEAD`). What is replaced, and why:

* ``cat_seg.third_party.clip.load`` returns a tiny ``model_vpt.CLIP`` built
  from :data:`TINY` (no download); its image tower gets ``vision_heads``
  heads instead of ``width // 64`` (which is 0 for width 16);
* ``CATSeg.upsample1`` / ``upsample2`` are rebuilt for the tiny CLIP width
  (the released code hard-codes 768 / 1024 input channels);
* every parameter is re-drawn from the seed (``model_vpt.CLIP`` leaves
  ``positional_embedding`` and ``text_projection`` uninitialised and many
  biases are zero, which would hide mapping errors) and rounded to float16
  (stored losslessly at half the size); the text token embedding is drawn by
  :func:`mmovss.testing.official_parity.catseg.regenerate` and not stored;
* ``Tensor.cuda`` / ``Module.cuda`` are no-ops (the code calls ``.cuda()``).

The image tower has 9 blocks: the guidance blocks 3 and 7 of ViT-B/16 must
not be the last one (the dense last block bypasses their forward hooks).
The shifted-window ``attn_mask`` buffers (constants of the 24 x 24 grid,
dropped by the converter) are not stored.

Three runs of the same model on one image (``--image-size``, output at
``--output-size``): ``TEST.SLIDING_WINDOW False`` (``whole/*`` stages),
``True`` (``slide/*``) and, with the aggregator's ``pad_len`` set to 2 for the
3 classes, the top-k class selection of large vocabularies (``topk/*``). Large
stages are stored as strided subsets (``meta['strides']``). Needs detectron2's
source (nothing compiled), timm, einops, fvcore (the official code's imports).
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.catseg import regenerate  # noqa: E402
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    add_source_dirs,
    cuda_as_noop,
    detectron2_dir,
    seed_everything,
)

#: The tiny CLIP (``model_vpt.CLIP`` arguments, plus the image-tower heads).
TINY = dict(embed_dim=16, image_resolution=224, vision_layers=9, vision_width=16,
            vision_patch_size=16, vision_heads=2, context_length=77, vocab_size=49408,
            transformer_width=16, transformer_heads=2, transformer_layers=2)
#: Tiny aggregator widths (``MODEL.SEM_SEG_HEAD.*``, lower case).
HEAD = dict(text_guidance_dim=16, text_guidance_proj_dim=8, appearance_guidance_dim=16,
            appearance_guidance_proj_dim=8, decoder_dims=[16, 16],
            decoder_guidance_dims=[16, 8], decoder_guidance_proj_dims=[8, 4],
            num_layers=2, num_heads=4, hidden_dims=16, pooling_sizes=[1, 1],
            window_sizes=12)
CLASSES = ['cat', 'sky, clouds', 'grass']
#: (stage prefix, TEST.SLIDING_WINDOW, the Aggregator's pad_len). 'topk' keeps only the 2 classes
#: of highest cost (the released code's path for more than pad_len = 256 classes, A-847 / PC-459).
RUNS = [('whole', False, 256), ('slide', True, 256), ('topk', False, 2)]
TOPK_STAGES = ('cost', 'aggregation1', 'logits', 'probs', 'labels')
#: Gain of the last conv (logits): larger class margins, so that float rounding on another
#: machine cannot flip labels at near ties.
HEAD_GAIN = 4.0
TOKEN_KEY = 'sem_seg_head.predictor.clip_model.token_embedding.weight'
#: Steps of the strided subsets stored (per dimension of the stored array).
STRIDES = {
    'whole/clip_dense': [1, 2, 1], 'whole/clip_block3': [1, 4, 1], 'whole/clip_block7': [1, 4, 1],
    'whole/spatial0': [1, 2, 1, 3, 3], 'whole/spatial1': [1, 2, 1, 3, 3],
    'whole/aggregation0': [1, 2, 1, 3, 3], 'whole/aggregation1': [1, 2, 1, 3, 3],
    'whole/decoder1': [1, 2, 6, 6], 'whole/decoder2': [1, 2, 12, 12],
    'whole/logits': [1, 1, 3, 3], 'whole/probs_grid': [1, 3, 3],
    'slide/clip_dense': [1, 12, 1], 'slide/clip_block3': [1, 24, 1],
    'slide/clip_block7': [1, 24, 1], 'slide/cost': [1, 1, 1, 2, 2],
    'slide/spatial0': [1, 4, 1, 4, 4], 'slide/spatial1': [1, 4, 1, 4, 4],
    'slide/aggregation0': [1, 4, 1, 4, 4], 'slide/aggregation1': [1, 4, 1, 4, 4],
    'slide/decoder1': [1, 4, 8, 8], 'slide/decoder2': [1, 4, 16, 16],
    'slide/logits': [1, 1, 6, 6], 'slide/probs_grid': [1, 16, 16],
    'topk/cost': [1, 1, 1, 2, 2], 'topk/aggregation1': [1, 2, 1, 3, 3], 'topk/logits': [1, 1, 3, 3],
    'topk/probs': [1, 2, 2],
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True, help='clone of KU-CVLAB/CAT-Seg')
    parser.add_argument('--detectron2', default=None, help='detectron2 source clone')
    parser.add_argument('--official-commit', default=None,
                        help='commit of the clone, recorded in meta.json (read with git when the '
                             'clone has a .git folder)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True, help='fixture folder to write')
    parser.add_argument('--image-size', type=int, nargs=2, default=[72, 100], metavar=('H', 'W'))
    parser.add_argument('--output-size', type=int, nargs=2, default=[40, 56], metavar=('H', 'W'),
                        help="the sample's original size (detectron2's height/width)")
    return parser.parse_args(argv)


def tiny_clip_loader(model_vpt, clip=None):
    """A replacement of ``clip.load`` returning the tiny ``model_vpt.CLIP`` (``clip``: widths
    of :data:`TINY`'s form, default :data:`TINY`)."""
    clip = TINY if clip is None else clip

    def load(name, device='cpu', jit=False, prompt_depth=0, prompt_length=0):
        base = model_vpt.VisualTransformer

        class FewHeads(base):
            def __init__(self, *args, heads, **kwargs):
                super().__init__(*args, heads=clip['vision_heads'], **kwargs)

        model_vpt.VisualTransformer = FewHeads
        try:
            spec = {k: v for k, v in clip.items() if k != 'vision_heads'}
            model = model_vpt.CLIP(**spec, prompt_depth=prompt_depth,
                                   prompt_length=prompt_length)
        finally:
            model_vpt.VisualTransformer = base
        return model.eval(), None
    return load


def redraw(model: nn.Module, seed: int) -> dict:
    """Re-draws every parameter (see the module docstring); float16-rounded."""
    gen = torch.Generator().manual_seed(seed)
    regenerated = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == TOKEN_KEY:
                spec = dict(shape=list(p.shape), seed=seed + 1, std=1.0)
                p.copy_(regenerate(spec))
                regenerated[name] = spec
                continue
            if p.dim() >= 2:
                value = torch.randn(p.shape, generator=gen) * p[0].numel() ** -0.5
                if name.endswith('transformer.head.weight'):
                    value = value * HEAD_GAIN  # well separated classes: robust labels
            elif name.endswith('weight'):  # LayerNorm / GroupNorm gains
                value = 1 + 0.1 * torch.randn(p.shape, generator=gen)
            else:
                value = 0.1 * torch.randn(p.shape, generator=gen)
            p.copy_(value.half().float())
    return regenerated


def build(args, class_json: str, clip=None, head=None):
    """The official ``CATSeg`` of ``configs/vitb_384.yaml`` with the widths ``clip`` / ``head``
    (default :data:`TINY` / :data:`HEAD`; ``head={}`` keeps the released aggregator widths)."""
    clip = TINY if clip is None else clip
    head_widths = HEAD if head is None else head
    from cat_seg import add_cat_seg_config
    from cat_seg.cat_seg_model import CATSeg
    from cat_seg.third_party import clip as official_clip
    from cat_seg.third_party import model_vpt
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_cat_seg_config(cfg)
    cfg.merge_from_file(osp.join(args.official_repo, 'configs', 'vitb_384.yaml'))
    cfg.MODEL.DEVICE = 'cpu'
    head = cfg.MODEL.SEM_SEG_HEAD
    head.TRAIN_CLASS_JSON = head.TEST_CLASS_JSON = class_json
    for key, value in head_widths.items():
        setattr(head, key.upper(), value)
    official_clip.load = tiny_clip_loader(model_vpt, clip)
    model = CATSeg(cfg)
    width = clip['vision_width']
    guidance = head.DECODER_GUIDANCE_DIMS
    model.upsample1 = nn.ConvTranspose2d(width, guidance[0], 2, 2)
    model.upsample2 = nn.ConvTranspose2d(width, guidance[1], 4, 4)
    return model.eval(), cfg


#: The released widths (``clip.load('ViT-B/16')``: 12 heads of 64; text 8 heads of 64) for
#: ``build_official(args, size='full')``.
FULL = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
            vision_patch_size=16, vision_heads=12, context_length=77, vocab_size=49408,
            transformer_width=512, transformer_heads=8, transformer_layers=12)


def build_official(args, classes, size='tiny', sliding=True):
    """The official model with re-drawn weights, for side-by-side timing.

    Used by ``tools/analysis_tools/compare_reference_trained.py``: ``size`` 'tiny'
    (:data:`TINY` / :data:`HEAD`) or 'full' (:data:`FULL` and the released aggregator widths of
    ``vitb_384.yaml`` with ``eval.sh``'s ``POOLING_SIZES [1, 1]``). Call inside
    :func:`~mmovss.testing.official_parity.official_code.cuda_as_noop`, after
    ``add_source_dirs``.

    Returns:
        tuple: The model (eval mode), its state dict (float32, with the regenerated token
        embedding) and ``meta`` in the fixture's form (for our model's config).
    """
    with tempfile.TemporaryDirectory() as tmp:
        class_json = osp.join(tmp, 'classes.json')
        with open(class_json, 'w') as f:
            json.dump(list(classes), f)
        if size == 'full':
            clip, head = FULL, dict(pooling_sizes=[1, 1])
        else:
            clip, head = TINY, HEAD
        model, cfg = build(args, class_json, clip, head)
    redraw(model, args.seed)
    model.sliding_window = sliding
    widths = cfg.MODEL.SEM_SEG_HEAD
    meta = dict(
        tiny=clip, classes=list(classes),
        head=dict(text_guidance_proj_dim=widths.TEXT_GUIDANCE_PROJ_DIM,
                  appearance_guidance_proj_dim=widths.APPEARANCE_GUIDANCE_PROJ_DIM,
                  decoder_dims=list(widths.DECODER_DIMS),
                  decoder_guidance_dims=list(widths.DECODER_GUIDANCE_DIMS),
                  decoder_guidance_proj_dims=list(widths.DECODER_GUIDANCE_PROJ_DIMS),
                  num_layers=widths.NUM_LAYERS, num_heads=widths.NUM_HEADS,
                  hidden_dims=widths.HIDDEN_DIMS, pooling_sizes=list(widths.POOLING_SIZES),
                  window_sizes=widths.WINDOW_SIZES, pad_len=256),
        clip_resolution=list(model.clip_resolution), layer_indexes=list(model.layer_indexes),
        clip_pixel_mean=list(cfg.MODEL.CLIP_PIXEL_MEAN),
        clip_pixel_std=list(cfg.MODEL.CLIP_PIXEL_STD))
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in model.state_dict().items() if not k.endswith('.attn_mask')}
    return model, state, meta


def run(model, image, output_size, sliding: bool) -> dict:
    """One run; the official outputs of every stage (full arrays)."""
    import cat_seg.cat_seg_model as cat_seg_model

    predictor = model.sem_seg_head.predictor
    agg = predictor.transformer
    out = {}

    def keep(name, fn=lambda o: o):
        def hook(_m, _i, o):
            out.setdefault(name, []).append(fn(o))
        return hook

    handles = [predictor.clip_model.visual.register_forward_hook(keep('clip_dense')),
               agg.register_forward_hook(keep('logits')),
               agg.decoder1.register_forward_hook(keep('decoder1')),
               agg.decoder2.register_forward_hook(keep('decoder2'))]
    for i, layer in enumerate(agg.layers):
        handles.append(layer.swin_block.register_forward_hook(keep(f'spatial{i}')))
        handles.append(layer.register_forward_hook(keep(f'aggregation{i}')))
    correlation = agg.correlation
    postprocess = cat_seg_model.sem_seg_postprocess

    def cost(*a, **k):
        value = correlation(*a, **k)
        out.setdefault('cost', []).append(value)
        return value

    def probs_grid(result, img_size, h, w):
        # the function's own first step: crop to img_size
        out.setdefault('probs_grid', []).append(result[:, :img_size[0], :img_size[1]])
        return postprocess(result, img_size, h, w)

    agg.correlation = cost
    cat_seg_model.sem_seg_postprocess = probs_grid
    model.sliding_window = sliding
    try:
        with torch.no_grad():
            result = model([dict(image=image, height=output_size[0],
                                 width=output_size[1])])[0]['sem_seg']
    finally:
        for handle in handles:
            handle.remove()
        del agg.correlation
        cat_seg_model.sem_seg_postprocess = postprocess
    stages = {k: v[0] for k, v in out.items()}
    stages['clip_dense'] = stages['clip_dense'][:, 1:]  # patch tokens (the class token is unused)
    stages['clip_block3'] = model.layers[0][1:].transpose(0, 1)  # LND -> NLD
    stages['clip_block7'] = model.layers[1][1:].transpose(0, 1)
    stages['text'] = predictor.cache
    stages['probs'] = result
    stages['labels'] = result.argmax(dim=0)
    return {k: v.detach().cpu().numpy() for k, v in stages.items()}


def main(argv=None):
    args = parse_args(argv)
    add_source_dirs(detectron2_dir(args.detectron2), args.official_repo)
    seed_everything(args.seed)
    with tempfile.TemporaryDirectory() as tmp, cuda_as_noop():
        class_json = osp.join(tmp, 'classes.json')
        with open(class_json, 'w') as f:
            json.dump(CLASSES, f)
        model, cfg = build(args, class_json)
        regenerated = redraw(model, args.seed)
        gen = torch.Generator().manual_seed(args.seed + 2)
        h, w = args.image_size
        coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=gen) * 255
        image = F.interpolate(coarse, size=(h, w), mode='bicubic', align_corners=False)
        image = image.clamp(0, 255).round()[0]
        stages = {}
        for name, sliding, pad_len in RUNS:
            agg = model.sem_seg_head.predictor.transformer
            agg.pad_len = pad_len
            for layer in agg.layers:
                layer.attention.pad_len = pad_len
            for stage, value in run(model, image, args.output_size, sliding).items():
                key = f'{name}/{stage}'
                if name == 'topk' and stage not in TOPK_STAGES:
                    continue
                steps = STRIDES.get(key)
                if steps:
                    value = value[tuple(slice(None, None, s) for s in steps)]
                stages[key] = np.ascontiguousarray(value)
        # the shifted-window masks are constants of the grid (the converter drops them)
        state = {k: (v.half() if v.is_floating_point() else v)
                 for k, v in model.state_dict().items()
                 if k not in regenerated and not k.endswith('.attn_mask')}
    commit = args.official_commit
    head_file = osp.join(args.official_repo, '.git')
    if commit is None and osp.exists(head_file):
        commit = os.popen(f'git -C {args.official_repo} rev-parse HEAD 2>/dev/null').read().strip()
    meta = dict(
        method='catseg', seed=args.seed, classes=CLASSES, tiny=TINY, head=dict(HEAD, pad_len=256),
        runs={name: dict(sliding=sliding, pad_len=pad) for name, sliding, pad in RUNS},
        image_size=list(args.image_size), output_size=list(args.output_size),
        clip_resolution=list(model.clip_resolution), layer_indexes=list(model.layer_indexes),
        clip_pixel_mean=list(cfg.MODEL.CLIP_PIXEL_MEAN),
        clip_pixel_std=list(cfg.MODEL.CLIP_PIXEL_STD),
        size_divisibility=model.size_divisibility, strides=STRIDES, regenerated=regenerated,
        official_commit=commit or None, state_dict_dtype='float16 (values drawn float16-exact)',
        command='python tools/parity/catseg_reference.py ' + ' '.join(sys.argv[1:]))
    # integer RGB values 0..255: stored exactly as uint8
    write_fixture(args.out, meta, state, dict(image=image.numpy().astype(np.uint8)), stages)
    print(f'wrote {args.out}: {len(stages)} stages, {len(state)} tensors')


if __name__ == '__main__':
    main()
