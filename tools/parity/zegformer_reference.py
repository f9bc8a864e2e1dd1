"""Official-parity fixture of ZegFormer: runs the official code on CPU.

Builds the official ``MaskFormer`` meta-architecture of
github.com/dingjiansw101/ZegFormer from its released gzss evaluation config
(``configs/coco-stuff/zegformer_R101_bs32_60k_vit16_coco-stuff_gzss_eval.yaml``:
CLIP classification of masked crops, ensembling, ``GZERO_CALIBRATE 0.1``,
``PROMPT_ENSEMBLE_TYPE single``) with tiny widths (``--depth`` ResNet, 2
decoder layers, 5 queries, 5 classes of which 2 unseen) and a seeded random
init (norm statistics and affine parameters perturbed; the mask MLP, query
embeddings and input projection redrawn so that the queries differ), runs it
on one random image and writes a fixture (see :mod:`mmovss.testing.official_parity`)::

    python tools/parity/zegformer_reference.py --official-repo ZegFormer \
        --detectron2 detectron2 --seed 0 --out tests/data/official_parity/zegformer/seed0

Stubs (nothing else of the official code is changed):

* ``mask_former.third_party.clip.load`` returns a tiny random OpenAI-layout
  CLIP built with the official ``model.py`` classes (ViT: 224 input, patch
  16, width 4, 1 block, 2 heads; text: width 8, 1 block; joint dim 512, as
  the official predictor hard-codes) instead of downloading ViT-B/16;
* ``Tensor.cuda`` / ``Module.cuda`` are no-ops (CPU);
* ``Tensor.half`` is a no-op during inference: the official code casts the
  CLIP logit scale and text features to fp16 for a CUDA fp16 CLIP; on CPU the
  fixture is float32 (mmovss runs fp16 with ``test_cfg.inference_dtype``);
* the dataset metadata (``stuff_classes``, ``val_extra_classes``) and the
  class-name JSON files are written for the tiny vocabulary.

The fixture's state dict is the model's (official keys) without the CLIP
*text* tower (its 49408-row token table alone would exceed the fixture
budget): the text features the official code computed are stored as inputs
instead (``text_features``: the segment branch's, ``text_features_clip``: the
CLIP branch's).
"""
import argparse
import contextlib
import json
import math
import os
import os.path as osp
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    add_source_dirs,
    capture_outputs,
    cuda_as_noop,
    detectron2_dir,
    seed_everything,
)

CLASSES = ['sky', 'cow', 'tree', 'frisbee', 'grass']
UNSEEN = ['cow', 'frisbee']
GZSS_CONFIG = 'configs/coco-stuff/zegformer_R101_bs32_60k_vit16_coco-stuff_gzss_eval.yaml'
TINY = dict(stem=8, res2=4, width_per_group=1, convs_dim=32, mask_dim=8, hidden=16, heads=2,
            ffn=16, dec_layers=2, queries=5, clip_width=4, clip_heads=2, clip_layers=1,
            clip_patch=16, clip_logit_scale=math.log(30.0))


@contextlib.contextmanager
def half_as_noop():
    saved = torch.Tensor.half
    torch.Tensor.half = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.half = saved


@contextlib.contextmanager
def record_softmax(store, width):
    """Records the inputs of ``F.softmax`` calls over ``width`` entries."""
    saved = F.softmax

    def softmax(x, *args, **kwargs):
        if x.dim() == 2 and x.shape[-1] == width:
            store.append(x.detach().clone())
        return saved(x, *args, **kwargs)
    F.softmax = softmax
    try:
        yield
    finally:
        F.softmax = saved


def tiny_clip(clip_model_module, seed):
    """A tiny OpenAI-layout CLIP (the official ``model.py`` classes)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        model = clip_model_module.CLIP(
            embed_dim=512, image_resolution=224, vision_layers=1, vision_width=64,
            vision_patch_size=TINY['clip_patch'], context_length=77, vocab_size=49408,
            transformer_width=8, transformer_heads=2, transformer_layers=1)
        model.visual = clip_model_module.VisualTransformer(
            224, TINY['clip_patch'], TINY['clip_width'], TINY['clip_layers'],
            TINY['clip_heads'], 512)
        for name, p in model.named_parameters():
            if name.endswith('logit_scale'):
                continue
            if p.dim() == 1 and ('ln' in name or 'bias' in name):
                p.data = (1.0 if name.endswith('weight') else 0.0) + 0.1 * torch.randn_like(p)
            else:
                p.data = torch.randn_like(p) * p.shape[-1] ** -0.5
        model.logit_scale.data.fill_(TINY['clip_logit_scale'])
    return model.float().eval()


def perturb_norms(model, seed):
    """Random affine parameters and statistics of every norm layer (seeded)."""
    gen = torch.Generator().manual_seed(seed + 2)
    for module in model.modules():
        name = type(module).__name__
        if name in ('FrozenBatchNorm2d', 'GroupNorm', 'LayerNorm', 'BatchNorm2d'):
            c = module.weight.shape[0]
            module.weight.data = 1 + 0.2 * torch.randn(c, generator=gen)
            module.bias.data = 0.2 * torch.randn(c, generator=gen)
            if hasattr(module, 'running_mean') and module.running_mean is not None:
                module.running_mean.data = 0.2 * torch.randn(c, generator=gen)
                module.running_var.data = 0.5 + torch.rand(c, generator=gen)


def build_official(args, workdir):
    import mask_former  # noqa: F401  (registers the meta-architectures)
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config
    from mask_former import add_mask_former_config
    from mask_former.third_party import clip as official_clip
    from mask_former.third_party import model as clip_model_module

    seen = [c for c in CLASSES if c not in UNSEEN]
    train_json, test_json = osp.join(workdir, 'seen.json'), osp.join(workdir, 'all.json')
    with open(train_json, 'w') as f:
        json.dump(seen, f)
    with open(test_json, 'w') as f:
        json.dump(CLASSES, f)
    for name in ('zegformer_parity_val_all', 'zegformer_parity_val_all_'):
        MetadataCatalog.get(name).set(stuff_classes=list(CLASSES),
                                      val_extra_classes=list(UNSEEN))
    clip_net = tiny_clip(clip_model_module, args.seed)
    official_clip.load = lambda *a, **k: (clip_net, None)

    cfg = get_cfg()
    add_deeplab_config(cfg)  # as train_net.py: STEM_TYPE / RES5_MULTI_GRID keys
    add_mask_former_config(cfg)
    cfg.merge_from_file(osp.join(args.official_repo, GZSS_CONFIG))
    cfg.MODEL.DEVICE = 'cpu'
    cfg.MODEL.WEIGHTS = ''
    cfg.MODEL.RESNETS.DEPTH = args.depth
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = TINY['stem']
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = TINY['res2']
    cfg.MODEL.RESNETS.WIDTH_PER_GROUP = TINY['width_per_group']
    head = cfg.MODEL.SEM_SEG_HEAD
    head.CONVS_DIM, head.MASK_DIM = TINY['convs_dim'], TINY['mask_dim']
    head.NUM_CLASSES = len(CLASSES)
    head.TRAIN_CLASS_JSON, head.TEST_CLASS_JSON = train_json, test_json
    mf = cfg.MODEL.MASK_FORMER
    mf.HIDDEN_DIM, mf.NHEADS, mf.DIM_FEEDFORWARD = TINY['hidden'], TINY['heads'], TINY['ffn']
    mf.DEC_LAYERS, mf.NUM_OBJECT_QUERIES = TINY['dec_layers'], TINY['queries']
    cfg.DATASETS.TEST = ('zegformer_parity_val_all',)
    cfg.DATASETS.VAL_ALL = ('zegformer_parity_val_all_',)
    cfg.freeze()
    seed_everything(args.seed)
    with cuda_as_noop():
        model = build_model(cfg)
    perturb_norms(model, args.seed)
    # larger random mask-embedding weights (a different draw of the same model), so the
    # tiny decoder's queries give masks that differ from each other (empty to full)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed + 4)
        layers = model.sem_seg_head.predictor.mask_embed.layers
        for i, layer in enumerate(layers):  # He init, the output layer's gain --mask-scale
            gain = args.mask_scale if i == len(layers) - 1 else 2 ** 0.5
            layer.weight.data = torch.randn_like(layer.weight) * (
                gain / layer.weight.shape[1] ** 0.5)
            layer.bias.data = torch.randn_like(layer.bias) * 0.1
        # a smaller input projection (the untrained res5 map is large, so every query would
        # attend to the same position) and larger query embeddings: distinct queries
        proj = model.sem_seg_head.predictor.input_proj.weight
        proj.data = proj.data * args.memory_scale
        query = model.sem_seg_head.predictor.query_embed.weight
        query.data = torch.randn_like(query) * args.query_scale
    return cfg, model.eval()


def write_d2_resnet_fixture(args, path):
    """detectron2's ResNet alone (tiny R-50, MSRA stride-in-1x1, dilated res5,
    random FrozenBN): its state dict, input and res2-res5 outputs in one npz."""
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = get_cfg()
    r = cfg.MODEL.RESNETS
    r.DEPTH, r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS, r.WIDTH_PER_GROUP = 50, 4, 4, 1
    r.STRIDE_IN_1X1, r.RES5_DILATION = True, 2
    r.OUT_FEATURES = ['res2', 'res3', 'res4', 'res5']
    seed_everything(args.seed)
    net = build_resnet_backbone(cfg, ShapeSpec(channels=3)).eval()
    perturb_norms(net, args.seed)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        out = net(x)
    state = net.state_dict()
    # one flat array (a zip entry per tensor would double the file)
    arrays = dict(state_flat=torch.cat([v.reshape(-1).float() for v in state.values()]).numpy(),
                  state_keys=np.array(list(state)),
                  state_shapes=np.array(json.dumps([list(v.shape) for v in state.values()])))
    arrays['input'] = x.numpy()
    arrays.update({f'output/{k}': v.numpy() for k, v in out.items()})
    np.savez_compressed(path, **arrays)
    print(f'wrote {path}: {osp.getsize(path) / 1024:.0f} KB')


#: The released widths (R101 with detectron2's defaults, ``MaskFormer`` 256 / 8 heads / 2048
#: FFN / 6 layers / 100 queries, CLIP ViT-B/16 image tower) for
#: ``build_official_sized(args, ..., size='full')``; the text tower stays tiny (its features
#: are computed once when the model is built, outside the timed calls).
FULL = dict(stem=64, res2=256, width_per_group=64, convs_dim=256, mask_dim=256, hidden=256,
            heads=8, ffn=2048, dec_layers=6, queries=100, clip_width=768, clip_heads=12,
            clip_layers=12, clip_patch=16, clip_logit_scale=math.log(30.0))


def build_official_sized(args, classes, unseen, size='tiny'):
    """:func:`build_official` for any vocabulary and ``size``, for side-by-side timing.

    Used by ``tools/analysis_tools/compare_reference_trained.py``: ``size`` 'tiny'
    (:data:`TINY`, ResNet-``args.depth``) or 'full' (:data:`FULL`, R101), ``classes`` with
    ``unseen`` ones. ``args``: ``official_repo``, ``seed`` (the other options of :func:`main`
    take their defaults).

    Returns:
        tuple: The model (eval mode; run it under :func:`half_as_noop` and ``cuda_as_noop``),
        its state dict, ``meta`` in the fixture's form and the ``inputs`` (text features).
    """
    global TINY, CLASSES, UNSEEN
    opts = argparse.Namespace(**dict(dict(depth=101 if size == 'full' else 50, mask_scale=1.0,
                                          query_scale=2.0, memory_scale=0.1), **vars(args)))
    saved = TINY, CLASSES, UNSEEN
    TINY, CLASSES, UNSEEN = (FULL if size == 'full' else TINY), list(classes), list(unseen)
    widths = TINY
    try:
        with tempfile.TemporaryDirectory() as workdir:
            cfg, model = build_official(opts, workdir)
    finally:
        TINY, CLASSES, UNSEEN = saved
    predictor = model.sem_seg_head.predictor
    meta = dict(
        classes=list(classes), unseen=list(unseen), depth=opts.depth, tiny=widths,
        values=dict(gzero_calibrate=cfg.MODEL.MASK_FORMER.GZERO_CALIBRATE,
                    clip_cls_style=cfg.MODEL.CLIP_CLS_STYLE,
                    temperature=cfg.MODEL.SEM_SEG_HEAD.TEMPERATURE,
                    pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD),
                    clip_pixel_mean=list(cfg.MODEL.CLIP_PIXEL_MEAN),
                    clip_pixel_std=list(cfg.MODEL.CLIP_PIXEL_STD), fusion_lambda=2. / 3.))
    inputs = dict(text_features=predictor.text_features_test.clone(),
                  text_features_clip=predictor.text_features_test_clip.clone())
    return model, model.state_dict(), meta, inputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True, help='ZegFormer clone')
    parser.add_argument('--detectron2', default=None, help='detectron2 source clone')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--d2-resnet-out', default=None,
                        help='also write the detectron2 ResNet fixture (.npz) here')
    parser.add_argument('--image-size', type=int, nargs=2, default=(32, 64),
                        metavar=('H', 'W'), help='multiples of 32 (no padding)')
    parser.add_argument('--mask-scale', type=float, default=1.0,
                        help='gain of the redrawn mask MLP output layer (std gain / sqrt(fan_in))')
    parser.add_argument('--query-scale', type=float, default=2.0,
                        help='std of the redrawn query embeddings')
    parser.add_argument('--memory-scale', type=float, default=0.1,
                        help='factor on the redrawn transformer input projection')
    parser.add_argument('--depth', type=int, default=50, choices=(50, 101))
    args = parser.parse_args(argv)
    h, w = args.image_size
    if h % 32 or w % 32:
        parser.error('--image-size must be multiples of 32 (SIZE_DIVISIBILITY).')
    add_source_dirs(detectron2_dir(args.detectron2), args.official_repo)
    if args.d2_resnet_out:
        write_d2_resnet_fixture(args, args.d2_resnet_out)
    with tempfile.TemporaryDirectory() as workdir:
        cfg, model = build_official(args, workdir)
    predictor = model.sem_seg_head.predictor
    gen = torch.Generator().manual_seed(args.seed + 3)
    # integer pixel values (a decoded image; compresses well)
    image = torch.randint(0, 256, (3, h, w), generator=gen).float()
    num = len(CLASSES)

    modules = dict(backbone=model.backbone,
                   mask_features=model.sem_seg_head.pixel_decoder.mask_features,
                   transformer=predictor.transformer, projection=predictor.projection_layer,
                   predictor=predictor, visual=predictor.clip_model.visual)
    fused = []
    original_inference2 = model.semantic_inference2

    def inference2(mask_cls, mask_pred):
        fused.append(mask_cls.detach().clone())
        return original_inference2(mask_cls, mask_pred)
    model.semantic_inference2 = inference2
    softmax_inputs = []
    with torch.no_grad(), cuda_as_noop(), half_as_noop(), \
            capture_outputs(modules) as store, record_softmax(softmax_inputs, num + 1):
        results = model([{'image': image, 'height': h, 'width': w}])
    model.semantic_inference2 = original_inference2

    feats = store['backbone'][0]
    stages = {f'backbone/{k}': v for k, v in feats.items()}
    stages['pixel_decoder/mask_features'] = store['mask_features'][0]
    hs = store['transformer'][0][0]  # (L, B, Q, C), decoder norm applied
    proj = store['projection'][0]
    out = store['predictor'][0]
    layers = out['aux_outputs'] + [dict(pred_logits=out['pred_logits'],
                                        pred_masks=out['pred_masks'])]
    for i in range(hs.shape[0]):
        stages[f'decoder/layer{i}/queries'] = hs[i]
        stages[f'decoder/layer{i}/segment_embeddings'] = proj[i]
        stages[f'decoder/layer{i}/class_logits'] = layers[i]['pred_logits']
        stages[f'decoder/layer{i}/mask_logits'] = layers[i]['pred_masks']
    visual = store['visual'][0]
    stages['clip/crop_embeddings'] = visual / visual.norm(dim=-1, keepdim=True)
    # softmax inputs: the segment logits, then the CLIP logits (void appended)
    stages['clip/logits'] = softmax_inputs[1]
    stages['ensemble/probs'] = fused[0]
    scores = results[0]['sem_seg']
    stages['semantic/scores'] = scores
    stages['semantic/labels'] = scores.argmax(0).to(torch.uint8)
    stages = {k: v.detach().cpu().float().numpy() if v.is_floating_point()
              else v.cpu().numpy() for k, v in stages.items()}

    state_dict = {k: v for k, v in model.state_dict().items()
                  if not (k.startswith('sem_seg_head.predictor.clip_model.')
                          and not k.startswith('sem_seg_head.predictor.clip_model.visual.')
                          and not k.endswith('clip_model.logit_scale'))}
    seen = np.array([c not in UNSEEN for c in CLASSES])
    inputs = dict(image=image.numpy(), text_features=predictor.text_features_test.numpy(),
                  text_features_clip=predictor.text_features_test_clip.numpy(), seen=seen)
    commit = None
    git_dir = '/work/.mirror/dingjiansw101+ZegFormer/repo'
    if osp.isdir(git_dir):
        commit = os.popen(f'git --git-dir={git_dir} rev-parse HEAD').read().strip() or None
    meta = dict(
        method='zegformer', seed=args.seed, image_size=[h, w], classes=CLASSES,
        unseen=UNSEEN, official_config=GZSS_CONFIG, official_commit=commit,
        depth=args.depth, tiny=TINY,
        redraw=dict(mask_scale=args.mask_scale, query_scale=args.query_scale,
                    memory_scale=args.memory_scale),
        values=dict(gzero_calibrate=cfg.MODEL.MASK_FORMER.GZERO_CALIBRATE,
                    ensembling=cfg.MODEL.MASK_FORMER.ENSEMBLING,
                    prompt_ensemble_type=cfg.MODEL.PROMPT_ENSEMBLE_TYPE,
                    clip_cls_style=cfg.MODEL.CLIP_CLS_STYLE,
                    temperature=cfg.MODEL.SEM_SEG_HEAD.TEMPERATURE,
                    pixel_mean=list(cfg.MODEL.PIXEL_MEAN), pixel_std=list(cfg.MODEL.PIXEL_STD),
                    clip_pixel_mean=list(cfg.MODEL.CLIP_PIXEL_MEAN),
                    clip_pixel_std=list(cfg.MODEL.CLIP_PIXEL_STD),
                    fusion_lambda=2. / 3.),
        dropped_from_state_dict='sem_seg_head.predictor.clip_model text tower (inputs '
                                'text_features / text_features_clip hold its outputs)',
        command='python tools/parity/zegformer_reference.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv))
    write_fixture(args.out, meta, state_dict, inputs, stages)
    total = sum(osp.getsize(osp.join(args.out, f)) for f in os.listdir(args.out))
    print(f'wrote {args.out}: {len(state_dict)} tensors, {len(stages)} stages, '
          f'{total / 1024:.0f} KB')


if __name__ == '__main__':
    main()
