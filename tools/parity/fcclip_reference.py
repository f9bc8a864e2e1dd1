#!/usr/bin/env python
"""Runs the official FC-CLIP on CPU with tiny random weights; writes a fixture.

    python tools/parity/fcclip_reference.py --official-repo /path/to/fc-clip \
        --detectron2 /path/to/detectron2 --seed 0 --out DIR [--image-size H W]

The user's clone of github.com/bytedance/fc-clip is imported (nothing of it is
part of mmovss): its ``FCCLIP`` meta-architecture is built from its own
``fcclip_convnext_large_eval_ade20k.yaml`` with tiny widths
(:mod:`mmovss.testing.official_parity.fcclip`), in semantic mode
(``PANOPTIC_ON``/``INSTANCE_ON`` False, as its A-847/PC/VOC configs), and run
twice on one image: ``ENSEMBLE_ON_VALID_MASK`` True and False, and once more
(False) with ``sem_seg_postprocess_before_inference`` (as with ``PANOPTIC_ON``)
for an original size 5/6 of the image's (``final/original``). Stubs and
patches (all in this process only, the clone is not edited):

* ``MultiScaleDeformableAttention`` (the compiled CUDA op) is an empty module,
  so ``MSDeformAttn`` takes its own pure-PyTorch path;
* the ``fcclip`` package is imported without its ``__init__`` (datasets and
  evaluators are not needed);
* ``open_clip.create_model_and_transforms`` in ``fcclip/modeling/backbone/clip.py``
  returns a seeded tiny ConvNeXt CLIP (``TINY_CLIP_CFG``), its tokenizer is
  open_clip's default one, and the backbone reports the tiny stage widths;
* ``CLIP.encode_text`` (written for sequence-first open_clip 2.x) calls open_clip
  3.x's batch-first ``encode_text`` (same computation: token + position
  embeddings, causal transformer, ``ln_final``, EOT features, projection);
* the pixel decoder's FFN width (hard-coded 1024 in ``from_config``) is set to
  ``--enc-ffn`` to keep the fixture small.

The weights are the official init from ``--seed``, except: the text token
embedding is regenerated from a seed (not stored, see ``meta['regenerated']``),
and the mask logits are shifted (``mask_features`` channel 0 set to 1, the last
``mask_embed`` bias of that channel lowered) until a final mask is empty at
the CLIP resolution while another is not, so both ensemble gates differ.

Needs detectron2's source (nothing compiled) and the imports of it and of the
clone: ``pip install fvcore iopath pycocotools`` (not mmovss dependencies).
"""
import argparse
import os.path as osp
import subprocess
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mmovss.testing.official_parity import fcclip as spec  # noqa: E402
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    add_source_dirs,
    detectron2_dir,
    seed_everything,
    stub_module,
)

TRAIN_NAMES = ['cat', 'puppy', 'tree']
TEST_NAMES = ['cat', 'dog, puppy', 'grass', 'sky']
STUBS = [
    'MultiScaleDeformableAttention: empty module (MSDeformAttn uses its PyTorch path)',
    'fcclip package imported without its __init__ (no datasets/evaluators)',
    'clip.open_clip.create_model_and_transforms: seeded tiny ConvNeXt CLIP (TINY_CLIP_CFG)',
    "clip.open_clip.get_tokenizer: open_clip.get_tokenizer('ViT-B-32') (SimpleTokenizer)",
    'CLIP.__init__: stage widths reported as TINY_DIMS',
    'CLIP.encode_text: open_clip 3.x batch-first encode_text (same computation)',
    'MSDeformAttnPixelDecoder.from_config: transformer_dim_feedforward = --enc-ffn',
]
EVAL_YAML = 'configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_ade20k.yaml'


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--official-repo', required=True, help='clone of bytedance/fc-clip')
    p.add_argument('--detectron2', default=None, help='detectron2 source clone')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    p.add_argument('--image-size', type=int, nargs=2, default=[36, 52], metavar=('H', 'W'))
    p.add_argument('--enc-ffn', type=int, default=32,
                   help='pixel-decoder FFN width (official: 1024, hard-coded)')
    p.add_argument('--official-commit', default=None,
                   help='commit of the clone, recorded in meta.json (default: git rev-parse)')
    return p.parse_args()


def import_official(repo: str):
    stub_module('MultiScaleDeformableAttention')
    pkg = types.ModuleType('fcclip')
    pkg.__path__ = [osp.join(repo, 'fcclip')]
    sys.modules['fcclip'] = pkg
    import fcclip.config as config
    import fcclip.fcclip as meta_arch
    import fcclip.modeling  # noqa: F401  (registers CLIP, pixel decoder, head)
    import fcclip.modeling.backbone.clip as clip_mod
    import fcclip.modeling.pixel_decoder.msdeformattn as pd_mod
    return config, meta_arch, clip_mod, pd_mod


def patch_official(clip_mod, pd_mod, seed: int, enc_ffn: int, token_spec: dict,
                   clip_cfg=None, dims=None):
    """The stubs of the module docstring (``clip_cfg`` / ``dims``: default the tiny ones)."""
    import open_clip

    from mmovss.testing.clip import build_tiny_clip
    clip_cfg = spec.TINY_CLIP_CFG if clip_cfg is None else clip_cfg
    dims = spec.TINY_DIMS if dims is None else dims

    def create_model_and_transforms(name, pretrained=None, **kwargs):
        model = build_tiny_clip(clip_cfg, seed=seed)
        with torch.no_grad():
            model.token_embedding.weight.copy_(spec.regenerate_tensor(token_spec))
        return model, None, None

    clip_mod.open_clip = types.SimpleNamespace(
        create_model_and_transforms=create_model_and_transforms,
        get_tokenizer=lambda name: open_clip.get_tokenizer('ViT-B-32'))

    def encode_text(self, text, normalize: bool = False):
        return self.clip_model.encode_text(text, normalize=normalize)

    clip_mod.CLIP.encode_text = encode_text
    init = clip_mod.CLIP.__init__

    def tiny_init(self, cfg, input_shape):
        init(self, cfg, input_shape)
        chs = [dims[0], *dims]
        for name, c in zip(['stem', 'res2', 'res3', 'res4', 'res5'], chs):
            self._out_feature_channels[name] = c

    clip_mod.CLIP.__init__ = tiny_init
    from_config = pd_mod.MSDeformAttnPixelDecoder.from_config.__func__

    def tiny_from_config(cls, cfg, input_shape):
        ret = from_config(cls, cfg, input_shape)
        ret['transformer_dim_feedforward'] = enc_ffn
        return ret

    pd_mod.MSDeformAttnPixelDecoder.from_config = classmethod(tiny_from_config)


def build_cfg(config, repo: str, sizes: dict, train_names=None, test_names=None):
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog
    for name, classes in (('mmovss_parity_train', train_names or TRAIN_NAMES),
                          ('mmovss_parity_test', test_names or TEST_NAMES)):
        MetadataCatalog.get(name).set(stuff_classes=list(classes))
    from detectron2.projects.deeplab import add_deeplab_config
    cfg = get_cfg()
    add_deeplab_config(cfg)  # as the official train_net.py setup()
    config.add_maskformer2_config(cfg)
    config.add_fcclip_config(cfg)
    cfg.merge_from_file(osp.join(repo, EVAL_YAML))
    cfg.MODEL.DEVICE = 'cpu'
    cfg.DATASETS.TRAIN = ('mmovss_parity_train', )
    cfg.DATASETS.TEST = ('mmovss_parity_test', )
    mf = cfg.MODEL.MASK_FORMER
    mf.HIDDEN_DIM = sizes['hidden_dim']
    mf.NUM_OBJECT_QUERIES = sizes['queries']
    mf.NHEADS = sizes['heads']
    mf.DIM_FEEDFORWARD = sizes['dec_ffn']
    mf.DEC_LAYERS = sizes['dec_layers'] + 1
    mf.TEST.SEMANTIC_ON, mf.TEST.PANOPTIC_ON, mf.TEST.INSTANCE_ON = True, False, False
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = sizes['hidden_dim']
    cfg.MODEL.SEM_SEG_HEAD.MASK_DIM = sizes['mask_dim']
    cfg.MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS = sizes['enc_layers']
    cfg.MODEL.FC_CLIP.EMBED_DIM = sizes.get('embed_dim', spec.TINY_CLIP_CFG['embed_dim'])
    return cfg


#: The released ConvNeXt-L model (``convnext_large_d_320``: timm ``convnext_large`` trunk,
#: ``mlp`` head, text width 768 x 16 blocks; ``fcclip_convnext_large_eval_ade20k.yaml``:
#: 250 queries, 9 + 1 decoder layers, 6 deformable encoder layers of FFN 1024) for
#: ``build_official(args, ..., size='full')``.
FULL_CLIP_CFG = dict(
    embed_dim=768,
    vision_cfg=dict(timm_model_name='convnext_large', timm_model_pretrained=False, timm_pool='',
                    timm_proj='mlp', timm_drop=0.0, timm_drop_path=0.0, image_size=320),
    text_cfg=dict(context_length=77, vocab_size=49408, width=768, heads=12, layers=16))
FULL_SIZES = dict(stage_channels=[192, 384, 768, 1536], hidden_dim=256, mask_dim=256,
                  enc_layers=6, enc_points=4, enc_ffn=1024, heads=8, queries=250, dec_layers=9,
                  dec_ffn=2048, embed_dim=768)


def build_official(args, train_names, test_names, size='tiny'):
    """The official ``FCCLIP`` (semantic mode) for side-by-side timing.

    Used by ``tools/analysis_tools/compare_reference_trained.py``: ``size`` 'tiny' (the sizes
    of :func:`main`, ``--enc-ffn`` 32) or 'full' (:data:`FULL_CLIP_CFG`, :data:`FULL_SIZES`);
    ``args``: ``official_repo``, ``seed``. The stubs of :func:`main` stay installed (no mask
    shift: the weights are the official init from the seed).

    Returns:
        tuple: The model (eval mode), its state dict (with the token embedding) and ``meta``
        in the fixture's form (for our model's config).
    """
    repo = osp.abspath(args.official_repo)
    config, meta_arch, clip_mod, pd_mod = import_official(repo)
    spec.register_parity_convnext()
    if size == 'full':
        clip_cfg, sizes = FULL_CLIP_CFG, dict(FULL_SIZES)
    else:
        clip_cfg = spec.TINY_CLIP_CFG
        sizes = dict(stage_channels=list(spec.TINY_DIMS), hidden_dim=32, mask_dim=32,
                     enc_layers=1, enc_points=4, enc_ffn=32, heads=2, queries=6,
                     dec_layers=3, dec_ffn=32)
    text = clip_cfg['text_cfg']
    token_spec = dict(seed=args.seed + 1000, std=0.02, shape=[text['vocab_size'], text['width']])
    patch_official(clip_mod, pd_mod, args.seed, sizes['enc_ffn'], token_spec, clip_cfg,
                   sizes['stage_channels'])
    cfg = build_cfg(config, repo, sizes, list(train_names), list(test_names))
    seed_everything(args.seed)
    model = meta_arch.FCCLIP(cfg).eval()
    sizes.pop('embed_dim', None)
    meta = dict(clip_cfg=clip_cfg, sizes=sizes, class_names=list(test_names),
                train_class_names=list(train_names),
                alpha=cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
                beta=cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
                pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD),
                size_divisibility=cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY)
    return model, model.state_dict(), meta


def np32(x):
    return x.detach().cpu().float().numpy()


def run(model, image, meta_arch, gated: bool, original_size=None, before_inference=False):
    """One official forward with the stages recorded.

    ``original_size``: the ``height``/``width`` asked for (default: the image's);
    ``before_inference``: ``sem_seg_postprocess_before_inference`` (set by the
    official ``from_config`` when ``PANOPTIC_ON``), mask logits resized to it
    before the sigmoid.
    """
    model.ensemble_on_valid_mask = gated
    model.sem_seg_postprocess_before_inference = before_inference
    rec = {}
    handles = [
        model.backbone.register_forward_hook(lambda m, i, o: rec.setdefault('backbone', o)),
        model.sem_seg_head.register_forward_hook(lambda m, i, o: rec.setdefault('head', o)),
        model.mask_pooling.register_forward_hook(lambda m, i, o: rec.setdefault('pooled', o)),
    ]
    pd = model.sem_seg_head.pixel_decoder
    saved = (pd.forward_features, model.backbone.visual_prediction_forward,
             meta_arch.get_classification_logits, model.semantic_inference,
             model.get_text_classifier)

    def wrap(name, fn):
        def inner(*a, **k):
            out = fn(*a, **k)
            rec.setdefault(name, out)
            return out
        return inner

    pd.forward_features = wrap('pixel_decoder', saved[0])
    model.backbone.visual_prediction_forward = wrap('pooled_embeddings', saved[1])
    meta_arch.get_classification_logits = wrap('ov_logits', saved[2])

    def semantic_inference(mask_cls, mask_pred):
        rec.setdefault('ensemble', mask_cls)
        return saved[3](mask_cls, mask_pred)

    model.semantic_inference = semantic_inference
    model.get_text_classifier = wrap('text', saved[4])
    try:
        with torch.no_grad():
            h, w = original_size or image.shape[-2:]
            out = model([{'image': torch.from_numpy(image).float(), 'height': h, 'width': w}])
    finally:
        for hd in handles:
            hd.remove()
        (pd.forward_features, model.backbone.visual_prediction_forward,
         meta_arch.get_classification_logits, model.semantic_inference,
         model.get_text_classifier) = saved
    rec['sem_seg'] = out[0]['sem_seg']
    return rec


def clip_res_maxima(rec) -> torch.Tensor:
    """(Q,) largest final mask logit of each query at the CLIP resolution."""
    masks = rec['head']['pred_masks']
    clip = rec['backbone']['clip_vis_dense']
    m = F.interpolate(masks, size=clip.shape[-2:], mode='bilinear', align_corners=False)
    return m[0].flatten(1).max(1).values


def main():
    args = parse_args()
    repo = osp.abspath(args.official_repo)
    add_source_dirs(repo, detectron2_dir(args.detectron2))
    config, meta_arch, clip_mod, pd_mod = import_official(repo)
    spec.register_parity_convnext()
    sizes = dict(stage_channels=list(spec.TINY_DIMS), hidden_dim=32, mask_dim=32,
                 enc_layers=1, enc_points=4, enc_ffn=args.enc_ffn, heads=2, queries=6,
                 dec_layers=3, dec_ffn=32)
    text = spec.TINY_CLIP_CFG['text_cfg']
    token_key = 'backbone.clip_model.token_embedding.weight'
    token_spec = dict(seed=args.seed + 1000, std=0.02,
                      shape=[text['vocab_size'], text['width']])
    patch_official(clip_mod, pd_mod, args.seed, args.enc_ffn, token_spec)
    cfg = build_cfg(config, repo, sizes)
    seed_everything(args.seed)
    model = meta_arch.FCCLIP(cfg).eval()

    # an image with structure (smooth random field), integer values 0..255
    gen = torch.Generator().manual_seed(args.seed)
    h, w = args.image_size
    low = torch.rand(1, 3, max(h // 8, 2), max(w // 8, 2), generator=gen)
    image = (F.interpolate(low, size=(h, w), mode='bilinear', align_corners=False)[0] * 255)
    image = image.round().to(torch.uint8).numpy()

    # shift every mask logit by -t until a final mask is empty at the CLIP size
    pd = model.sem_seg_head.pixel_decoder
    last = model.sem_seg_head.predictor.mask_embed.layers[-1]
    with torch.no_grad():
        pd.mask_features.weight[0].zero_()
        pd.mask_features.bias[0] = 1.0
        base = last.bias[0].item()
    shift, t = None, 0.0
    for _ in range(30):
        with torch.no_grad():
            last.bias[0] = base - t
        maxima = clip_res_maxima(run(model, image, meta_arch, True))
        if (maxima <= 0).any() and (maxima > 0).any():
            shift = t
            break
        # put 0 in the middle of the widest gap between the queries' maxima
        values = maxima.sort().values
        gap = int((values[1:] - values[:-1]).argmax())
        t += float(values[gap] + values[gap + 1]) / 2
    if shift is None:
        raise SystemExit('no mask shift gives an empty mask; try another --seed')

    gated = run(model, image, meta_arch, True)
    ungated = run(model, image, meta_arch, False)
    # the official evaluation with PANOPTIC_ON (A-150, Cityscapes): another original size
    original_size = [max(h * 5 // 6, 1), max(w * 5 // 6, 1)]
    original = run(model, image, meta_arch, False, original_size, before_inference=True)
    stages = {}
    bb = gated['backbone']
    backbone_stages = ['res2', 'res3', 'res4', 'res5']
    for name in backbone_stages + ['clip_vis_dense']:
        stages[f'backbone/{name}'] = np32(bb[name])
    stages['text/classifier'] = np32(gated['text'][0])
    mask_features, _, multi_scale = gated['pixel_decoder']
    stages['pixel_decoder/mask_features'] = np32(mask_features)
    for i, x in enumerate(multi_scale):
        stages[f'pixel_decoder/multi_scale_{i}'] = np32(x)
    head = gated['head']
    sets = head['aux_outputs'] + [dict(pred_logits=head['pred_logits'],
                                       pred_masks=head['pred_masks'])]
    for i, s in enumerate(sets):
        stages[f'decoder/masks_{i}'] = np32(s['pred_masks'])
        stages[f'decoder/logits_{i}'] = np32(s['pred_logits'])
    stages['ov/pooled_features'] = np32(gated['pooled'])
    stages['ov/pooled_embeddings'] = np32(gated['pooled_embeddings'])
    stages['ov/logits'] = np32(gated['ov_logits'][..., :-1])  # the official drops void
    clip = bb['clip_vis_dense']
    m = F.interpolate(head['pred_masks'], size=clip.shape[-2:], mode='bilinear',
                      align_corners=False)
    stages['ov/valid'] = ((m > 0).sum((-1, -2)) > 0).numpy()
    for tag, rec in (('gated', gated), ('ungated', ungated)):
        stages[f'ensemble/{tag}'] = np32(rec['ensemble'])[None]
        stages[f'final/{tag}'] = np32(rec['sem_seg'])
        stages[f'labels/{tag}'] = rec['sem_seg'].argmax(0).numpy().astype(np.uint8)
    stages['final/original'] = np32(original['sem_seg'])
    stages['labels/original'] = original['sem_seg'].argmax(0).numpy().astype(np.uint8)

    state = {k: v for k, v in model.state_dict().items() if k != token_key}
    commit = args.official_commit or subprocess.run(
        ['git', '-C', repo, 'rev-parse', 'HEAD'], capture_output=True,
        text=True).stdout.strip() or None
    meta = dict(
        method='fcclip', seed=args.seed, image_size=[h, w], official_repo_commit=commit,
        official_config=EVAL_YAML, class_names=TEST_NAMES, train_class_names=TRAIN_NAMES,
        clip_cfg=spec.TINY_CLIP_CFG, sizes=sizes, alpha=cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_ALPHA,
        beta=cfg.MODEL.FC_CLIP.GEOMETRIC_ENSEMBLE_BETA,
        pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD),
        size_divisibility=cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY,
        backbone_stages=backbone_stages, mask_logit_shift=shift, original_size=original_size,
        empty_masks=int((~torch.from_numpy(stages['ov/valid'])).sum()),
        regenerated={token_key: token_spec}, atol=1e-4, stubs=STUBS,
        command=' '.join(['python', 'tools/parity/fcclip_reference.py'] + sys.argv[1:]))
    write_fixture(args.out, meta, state, {'image': image}, stages)
    print(f'wrote {args.out}: {len(state)} official keys, {len(stages)} stages, '
          f'mask shift {shift}, empty masks {meta["empty_masks"]}')


if __name__ == '__main__':
    main()
