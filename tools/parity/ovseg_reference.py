"""Writes an OVSeg official-parity fixture from the official code (CPU, tiny random weights).

The official model (github.com/facebookresearch/ov-seg, ``OVSeg`` meta-architecture of
``open_vocab_seg/ovseg_model.py`` with its modified CLIP in ``third_party/CLIP``) is built from
the released config of the chosen backbone with tiny widths, initialised from ``--seed``, run on
one random image and recorded stage by stage::

    python tools/parity/ovseg_reference.py --official-repo OV_SEG_CLONE \\
        --detectron2 DETECTRON2_CLONE --seed 0 --out tests/data/official_parity/ovseg/seed0
    python tools/parity/ovseg_reference.py --official-repo OV_SEG_CLONE \\
        --detectron2 DETECTRON2_CLONE --seed 0 --backbone-only swin \\
        --out tests/data/official_parity/ovseg/swin_seed0
    python tools/parity/ovseg_reference.py --official-repo OV_SEG_CLONE \
        --detectron2 DETECTRON2_CLONE --key-layout r101c \
        --out tests/data/ovseg_official_keys/r101c.json.gz   # names + shapes, full size

The clone must hold ``third_party/CLIP`` (OVSeg's modified CLIP with mask prompts). Stubs, none
of which changes a computation: ``clip.load`` builds a tiny random CLIP of the official class
(vision heads of width 8, as the tiny width would give none), ``Tensor.cuda`` is a no-op, an
empty ``wandb`` module, the class names as the metadata of a dataset ``ovseg_parity_val``.
Rows of the CLIP token embedding that no prompt uses are zeroed before the run and stored as a
sparse tensor (the fixture stays small; the values the model sees are the stored ones). The
builders are shared with the side-by-side timing (:mod:`mmovss.benchmarking.official_builders`).
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmovss.benchmarking.official_builders import (  # noqa: E402
    OVSEG_CONFIGS,
    OVSEG_RELEASED_CLIP,
    import_ovseg,
    ovseg_cfg,
    ovseg_clip_loader,
    randomise_ovseg,
)
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    cuda_as_noop,
    seed_everything,
)

CLASS_NAMES = ['cat', 'grass', 'sky']
DATASET = 'ovseg_parity_val'
# tiny widths of every part (the released models: see configs/ovseg/)
TINY = dict(
    resnet=dict(DEPTH=50, STEM_OUT_CHANNELS=8, RES2_OUT_CHANNELS=4, WIDTH_PER_GROUP=1),
    swin=dict(EMBED_DIM=2, DEPTHS=[2, 2, 2, 2], NUM_HEADS=[1, 1, 1, 1], WINDOW_SIZE=7,
              PRETRAIN_IMG_SIZE=224),
    head=dict(EMBEDDING_DIM=16, EMBED_HIDDEN_DIM=12, CONVS_DIM=32, MASK_DIM=4),
    mask_former=dict(HIDDEN_DIM=16, NUM_OBJECT_QUERIES=6, NHEADS=2, DIM_FEEDFORWARD=16,
                     DEC_LAYERS=2),
    clip=dict(embed_dim=16, image_resolution=224, vision_layers=3, vision_width=8,
              vision_patch_size=16, context_length=77, vocab_size=49408,
              transformer_width=8, transformer_heads=1, transformer_layers=1),
    ensemble_weight=0.45, mask_thr=0.5, mask_prompt_depth=3)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True,
                        help='clone of github.com/facebookresearch/ov-seg (with third_party/CLIP)')
    parser.add_argument('--detectron2', default=None, help='detectron2 source clone')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--image-size', type=int, nargs=2, default=[64, 64], metavar=('H', 'W'))
    parser.add_argument('--backbone-only', choices=['swin', 'r101c'], default=None,
                        help='write a backbone-only fixture (layer outputs) of this backbone')
    parser.add_argument('--key-layout', choices=['swin', 'r101c'], default=None,
                        help='write the state-dict key layout (names and shapes, no values) '
                             'of the released model of this backbone at full size to --out '
                             '(a .json.gz file)')
    return parser.parse_args()


def used_tokens(clip, templates, names):
    tokens = torch.cat([clip.tokenize(t.format(n)) for t in templates for n in names])
    return torch.unique(tokens)


def image_input(size, seed):
    """A random image of four flat-coloured quadrants plus noise (distinct regions)."""
    gen = torch.Generator().manual_seed(seed + 2)
    h, w = size
    colours = torch.rand(2, 2, 3, generator=gen) * 255
    img = colours.repeat_interleave((h + 1) // 2, 0)[:h].repeat_interleave((w + 1) // 2, 1)[:, :w]
    img = img.permute(2, 0, 1) + 25 * torch.randn(3, h, w, generator=gen)
    return img.clamp(0, 255).round()


def to_np(x):
    return x.detach().cpu().numpy()


def run_backbone_only(args, cfg):
    from detectron2.modeling import build_backbone
    seed_everything(args.seed)
    backbone = build_backbone(cfg)
    backbone.eval()  # D2SwinTransformer.train returns None
    randomise_ovseg(backbone, args.seed)
    img = image_input(args.image_size, args.seed)
    mean = torch.tensor(cfg.MODEL.PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(cfg.MODEL.PIXEL_STD).view(3, 1, 1)
    x = ((img - mean) / std)[None]
    with torch.no_grad():
        feats = backbone(x)
    stages = {f'backbone/{k}': to_np(v[0]) for k, v in feats.items()}
    # relative_position_index: a constant of the window size (int64, too big to store)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()
             if not k.endswith('relative_position_index')}
    meta = dict(kind='backbone', backbone=args.backbone_only, seed=args.seed,
                image_size=list(args.image_size),
                backbone_cfg=TINY['swin' if args.backbone_only == 'swin' else 'resnet'],
                pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD))
    return meta, state, {'image': to_np(img).astype(np.uint8)}, stages


def run_model(args, cfg, clip):
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model
    from open_vocab_seg.modeling.clip_adapter.text_template import VILD_PROMPT
    MetadataCatalog.get(DATASET).set(stuff_classes=list(CLASS_NAMES))
    seed_everything(args.seed)
    model = build_model(cfg).eval()
    randomise_ovseg(model, args.seed)
    adapter = model.clip_adapter
    emb = adapter.clip_model.token_embedding.weight
    keep = used_tokens(clip, VILD_PROMPT, CLASS_NAMES)
    with torch.no_grad():
        unused = torch.ones(emb.shape[0], dtype=torch.bool)
        unused[keep] = False
        emb[unused] = 0
    img = image_input(args.image_size, args.seed)
    h, w = args.image_size

    rec = {}

    def keep_out(name):
        def hook(_m, _i, out):
            rec[name] = out
        return hook

    model.backbone.register_forward_hook(keep_out('backbone'))

    def head_hook(_m, _i, out):  # the model overwrites pred_logits afterwards
        rec['head'] = {'pred_logits': out['pred_logits'].clone(),
                       'pred_masks': out['pred_masks'].clone(),
                       'aux': [{k: v.clone() for k, v in a.items()}
                               for a in out.get('aux_outputs', [])]}
    model.sem_seg_head.register_forward_hook(head_hook)
    decoder = model.sem_seg_head.pixel_decoder
    forward_features = decoder.forward_features

    def record_pixel(features):
        out = forward_features(features)
        rec['mask_features'] = out[0]
        return out
    decoder.forward_features = record_pixel
    image_features = adapter.get_image_features

    def record_image_features(image, region_masks=None):
        out = image_features(image, region_masks)
        rec['region_embeddings'] = out
        return out
    adapter.get_image_features = record_image_features
    adapter.register_forward_hook(keep_out('clip'))
    einsum = torch.einsum

    def record_einsum(eq, *ops):
        if eq == 'qc,qhw->chw':
            rec['ensemble'] = (ops[0].clone(), ops[1].clone())
        return einsum(eq, *ops)

    inputs = [{'image': img, 'height': h, 'width': w, 'meta': {'dataset_name': DATASET}}]
    with torch.no_grad():
        # a "no object" embedding opposite to the queries' mean class embedding (a first
        # run), so that the classes, not "no object", carry the mask branch's probability
        model(inputs)
        queries = adapter.normalize_feature(rec['head']['pred_logits'][0])
        adapter.non_object_embedding.data.copy_(-queries.mean(0, keepdim=True))
        # the mask threshold halfway between the two lowest per-query mask maxima: one
        # proposal is empty, so CLIP skips it and the ensemble keeps p_mask^(1 - w) for it
        probs = torch.nn.functional.interpolate(
            rec['head']['pred_masks'], size=(h, w), mode='bilinear',
            align_corners=False)[0].sigmoid().flatten(1).amax(1).sort().values
        adapter.mask_thr = float((probs[0] + probs[1]) / 2)
    torch.einsum = record_einsum
    try:
        with torch.no_grad():
            result = model(inputs)[0]['sem_seg']
    finally:
        torch.einsum = einsum
    with torch.no_grad():
        text = adapter.get_text_features(list(CLASS_NAMES))
        layers = [a['pred_logits'] for a in rec['head']['aux']] + [rec['head']['pred_logits']]
        masks = [a['pred_masks'] for a in rec['head']['aux']] + [rec['head']['pred_masks']]
        logits = [adapter.get_sim_logits(text, adapter.normalize_feature(e)) for e in layers]
    clip_logits, _, valid = rec['clip']
    class_probs = rec['ensemble'][0]
    stages = {f'backbone/{k}': to_np(v[0]) for k, v in rec['backbone'].items()}
    stages['pixel_decoder/mask_features'] = to_np(rec['mask_features'][0])
    for i, (m, c) in enumerate(zip(masks, logits)):
        stages[f'decoder/mask_logits_{i}'] = to_np(m[0])
        stages[f'decoder/class_logits_{i}'] = to_np(c[0])
    stages['text/class_embeddings'] = to_np(text)
    stages['clip/valid'] = to_np(valid)
    stages['clip/region_embeddings'] = to_np(rec['region_embeddings'])
    # the non-object column of the CLIP branch is dropped by OVSeg.semantic_inference
    stages['clip/logits'] = to_np(clip_logits[:, :-1])
    stages['ensemble/class_probs'] = to_np(class_probs)
    stages['semantic/sem_seg'] = to_np(result)
    stages['semantic/labels'] = to_np(result.argmax(0)).astype(np.uint8)
    state = model.state_dict()
    key = 'clip_adapter.clip_model.token_embedding.weight'
    state[key] = state[key].to_sparse(sparse_dim=1)  # rows: one index per row
    c = cfg.MODEL
    meta = dict(
        kind='model', backbone='r101c', seed=args.seed, image_size=list(args.image_size),
        class_names=list(CLASS_NAMES), backbone_cfg=TINY['resnet'], head_cfg=TINY['head'],
        mask_former_cfg=TINY['mask_former'], clip_cfg=TINY['clip'],
        clip_vision_head_width=8,
        ensemble_weight=c.CLIP_ADAPTER.CLIP_ENSEMBLE_WEIGHT, mask_thr=adapter.mask_thr,
        mask_prompt_depth=c.CLIP_ADAPTER.MASK_PROMPT_DEPTH, mask_fill=c.CLIP_ADAPTER.MASK_FILL,
        text_templates=c.CLIP_ADAPTER.TEXT_TEMPLATES,
        pixel_mean=list(c.PIXEL_MEAN), pixel_std=list(c.PIXEL_STD),
        num_valid_regions=int(valid.sum()))
    return meta, state, {'image': to_np(img).astype(np.uint8)}, stages


def write_key_layout(args, clip, clip_model):
    """Names and shapes of the released model's state dict (built on the meta device from
    the released config, no values), for the converter test at full size."""
    import gzip
    import json

    import open_vocab_seg.modeling.clip_adapter.utils as adapter_utils
    from deeplab import add_deeplab_config
    from detectron2.config import get_cfg
    from detectron2.modeling import META_ARCH_REGISTRY
    from open_vocab_seg import add_ovseg_config
    spec = OVSEG_RELEASED_CLIP[args.key_layout]

    def load(name, mask_prompt_depth=0, device='cpu', jit=False):
        return clip_model.CLIP(mask_prompt_depth=mask_prompt_depth, **spec), None
    clip.load = adapter_utils.clip.load = load
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_ovseg_config(cfg)
    name = OVSEG_CONFIGS[args.key_layout]
    cfg.merge_from_file(osp.join(args.official_repo, 'configs', name))
    cfg.MODEL.CLIP_ADAPTER.CLIP_MODEL_NAME = 'released'
    linspace = torch.linspace  # Swin's drop-path rates are read with .item(): on the CPU
    torch.linspace = lambda *a, **k: linspace(*a, **dict(k, device='cpu'))
    try:
        with torch.device('meta'):
            model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    finally:
        torch.linspace = linspace
    layout = {k: list(v.shape) for k, v in model.state_dict().items()}
    with gzip.open(args.out, 'wt') as f:
        json.dump(dict(config=f'configs/{name}', keys=layout), f)
    print(f'wrote {args.out}: {len(layout)} keys')


def main():
    args = parse_args()
    clip, clip_model = import_ovseg(args.official_repo, args.detectron2)
    if args.key_layout:
        write_key_layout(args, clip, clip_model)
        return
    clip.load = ovseg_clip_loader(clip_model, TINY['clip'], head_width=8)
    import open_vocab_seg.modeling.clip_adapter.utils as adapter_utils
    adapter_utils.clip.load = clip.load
    cfg = ovseg_cfg(args.official_repo, args.backbone_only or 'r101c', TINY)
    with cuda_as_noop():
        if args.backbone_only:
            meta, state, inputs, stages = run_backbone_only(args, cfg)
        else:
            meta, state, inputs, stages = run_model(args, cfg, clip)
    meta['command'] = ' '.join(['python', 'tools/parity/ovseg_reference.py'] + sys.argv[1:])
    write_fixture(args.out, meta, state, inputs, stages)
    print(f'wrote {args.out}: {len(stages)} stages, {len(state)} state-dict keys')


if __name__ == '__main__':
    main()
