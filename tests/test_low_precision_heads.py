"""bf16 with the decode head cast once (``test_cfg.precision_mode='cast'``).

:class:`OpenVocabEncoderDecoder` casts the image tower *and* the decode head
of CAT-Seg, LSeg, the light decoder, FC-CLIP and SAN (``supports_low_precision_cast``);
each head keeps its joint-space projection, logit scale and cost / logit
layers in float32 (``float32_modules``, ``float32_parameters``). Checked
here against float32 on the same weights: the right modules are cast, the
logits are float32, close and give the same labels within the stated
rules; heads without a low-precision path refuse the mode with the fix; the
agreement tool (``tools/analysis_tools/precision_agreement.py``) pairs the
runs correctly. Measured on trained OVShapes models: docs/benchmarks.md,
"bf16 with the decode head cast once".
"""
import copy
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import mmovss  # noqa: F401
import mmovss.models.utils.low_precision as lp
from mmovss.benchmarking.precision import LABEL_AGREEMENT

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests'))
from test_fast_paths import ovshapes_scenes  # noqa: E402

#: name -> (config, agreement of labels with float32 on 4 OVShapes scenes,
#: largest |logit difference| relative to the float32 logits' std). The
#: backbone is the shipped (trained) tiny CLIP, the heads are random, so
#: many pixels are near ties between classes: measured 0.92 / 0.987 / 0.999
#: agreement and 0.06 / 0.08 / 0.02 relative error (CAT-Seg's random
#: aggregator leaves the smallest margins). A head left in float32, or a
#: float32 step done in bf16, changes these by far less than a broken cast
#: (wrong weights, a missing input cast) would, which the dtype checks catch.
HEADS = {
    'catseg': ('catseg_tiny-clip_1k_ovshapes-seen.py', 0.90, 0.15),
    'lseg': ('lseg_tiny-clip_1k_ovshapes-seen.py', 0.98, 0.15),
    'dense-refine': ('dense-refine_tiny-clip_1k_ovshapes-seen.py', 0.98, 0.05),
}
#: The float32 modules of each head (class attribute ``float32_modules``).
KEPT = {'catseg': ('cost_embed', 'to_logit'), 'lseg': ('to_embed', 'regularization'),
        'dense-refine': ('to_residual', )}


@pytest.fixture(autouse=True)
def bf16_is_fast(monkeypatch):
    """The CPU check says bf16 is faster (the fallback is tested in
    test_low_precision.py)."""
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=True, message=None, bf16_gflops=2.0, fp32_gflops=1.0))
    init_default_scope('mmseg')


def pair(config, **test_cfg):
    """(float32 model, bf16 cast model) of one OVShapes config, same weights."""
    from mmovss.ovshapes import world
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'ovshapes', config))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['test_cfg'] = dict(mode='whole')
    torch.manual_seed(0)
    fp32 = MODELS.build(model_cfg)
    fp32.init_weights()
    head = fp32.decode_head
    if hasattr(head, 'to_residual'):  # zero at init: give the decoder a say
        nn.init.normal_(head.to_residual.weight, std=0.05)
    model_cfg['test_cfg'] = dict(mode='whole', inference_dtype='bf16',
                                 precision_mode='cast', **test_cfg)
    bf16 = MODELS.build(model_cfg)
    bf16.load_state_dict(fp32.state_dict())
    for model in (fp32, bf16):
        model.eval()
        model.set_vocabulary(list(world.class_names()))
    return fp32, bf16


def metas(num):
    return [dict(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
            for _ in range(num)]


def matrix_dtypes(module, exclude=()):
    """dtypes of the Linear / conv weights of ``module`` outside ``exclude``."""
    out = set()
    for name, m in module.named_modules():
        if any(name == e or name.startswith(e + '.') for e in exclude):
            continue
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            out.add(m.weight.dtype)
    return out


@pytest.mark.parametrize('name', list(HEADS))
def test_cast_head_agrees_with_fp32(name):
    config, agreement, rel_err = HEADS[name]
    fp32, bf16 = pair(config)
    x = ovshapes_scenes(4)
    with torch.no_grad():
        ref = fp32.inference(x, metas(4))
        out = bf16.inference(x, metas(4))
    head = bf16.decode_head
    assert bf16.inference_precision['run'] == 'bf16'
    assert matrix_dtypes(head, exclude=KEPT[name]) == {torch.bfloat16}
    for kept in KEPT[name]:
        assert matrix_dtypes(getattr(head, kept)) == {torch.float32}, kept
    if hasattr(head, 'log_logit_scale'):
        assert head.log_logit_scale.dtype == torch.float32
    assert torch.bfloat16 in matrix_dtypes(bf16.backbone)
    assert matrix_dtypes(fp32.decode_head) == {torch.float32}  # a copy, not shared
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    err = float((out - ref).abs().max())
    assert 0 < err <= rel_err * float(ref.std()), err
    labels, ref_labels = out.argmax(1), ref.argmax(1)
    assert len(ref_labels.unique()) > 4
    assert float((labels == ref_labels).float().mean()) >= agreement


def test_catseg_cast_on_official_parity_fixture():
    """The released CAT-Seg architecture (tiny, official weights of the
    parity fixture), slide protocol: probabilities within bf16 rounding of
    float32 and the same label wherever float32 is not a near tie."""
    from mmovss.converters import catseg_official
    from mmovss.testing.official_parity import catseg as parity
    from mmovss.testing.official_parity import list_fixtures, load_fixture

    paths = list_fixtures('catseg')
    if not paths:
        pytest.skip('no CAT-Seg parity fixture (tests/data/official_parity/catseg)')
    fixture = load_fixture(paths[0])
    meta = fixture.meta
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in fixture.state_dict.items()}
    for key, spec in meta.get('regenerated', {}).items():
        state[key] = parity.regenerate(spec)
    converted = catseg_official.convert(state)
    image = torch.from_numpy(fixture.inputs['image']).float()
    mean = torch.tensor(meta['clip_pixel_mean']).view(-1, 1, 1)
    std = torch.tensor(meta['clip_pixel_std']).view(-1, 1, 1)
    h, w = image.shape[-2:]

    def run(dtype):
        cfg = parity.tiny_model_cfg(meta, 'catseg_slide')
        cfg['test_cfg'].update(inference_dtype=dtype, precision_mode='cast')
        model = MODELS.build(cfg)
        model.load_state_dict(converted, strict=True)
        model.eval()
        model.set_vocabulary(list(meta['classes']))
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), pad_shape=(h, w), ori_shape=tuple(meta['output_size']),
            padding_size=[0, 0, 0, 0]))
        with torch.no_grad():
            result = model.predict(((image - mean) / std)[None], [sample])[0]
        return model, result.seg_logits.data, result.pred_sem_seg.data[0]

    _, probs32, labels32 = run('fp32')
    model, probs16, labels16 = run('bf16')
    assert matrix_dtypes(model.decode_head.spatial_layers) == {torch.bfloat16}
    assert probs16.dtype == torch.float32
    # measured 0.0086: bf16 rounding of probabilities near 0.5
    assert float((probs16 - probs32).abs().max()) <= 0.02
    top = probs32.topk(2, dim=0).values
    clear = (top[0] - top[1]) > 0.01  # 22% of the pixels here; the rest are ties
    assert float(clear.float().mean()) > 0.1
    assert float((labels16 == labels32)[clear].float().mean()) >= LABEL_AGREEMENT


def kept_float32(module, names):
    """(modules whose attribute name is in ``names``, other matrix modules)."""
    kept, rest = [], []
    for full, m in module.named_modules():
        if not isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        parts = full.split('.')
        (kept if any(p in names for p in parts) else rest).append(m)
    return kept, rest


def test_fcclip_cast_on_official_parity_fixture():
    """FC-CLIP as released (ConvNeXt CLIP, official weights of the parity
    fixture at tiny widths), bf16 with the image tower and the head cast
    once (the default mode for ``--dtype bf16``): every float32 step kept
    (sampling locations, class branch, CLIP head, classifiers' logits),
    every stage within bf16 rounding of float32 and the same labels, in
    both final resize orders (``'logits'`` and the official ``'original'``)."""
    from mmovss.models.backbones import OpenCLIPConvNeXt
    from mmovss.models.decode_heads import FCCLIPHead
    from mmovss.testing.official_parity import fcclip as parity
    from mmovss.testing.official_parity import list_fixtures, load_fixture

    paths = list_fixtures('fcclip')
    if not paths:
        pytest.skip('no FC-CLIP parity fixture (tests/data/official_parity/fcclip)')
    fixture = load_fixture(paths[0])
    state = parity.official_state_dict(fixture)

    def run(dtype, upsample):
        model = parity._build(fixture.meta, state, gated=upsample == 'logits')
        model.decode_head.mask_upsample = upsample
        model.test_cfg.update(inference_dtype=dtype)
        original = fixture.meta['original_size'] if upsample == 'original' else None
        with torch.no_grad():
            inputs, result = parity._predict(model, fixture.inputs['image'], original)
            feats = model.extract_feat(inputs)
            head = model.decode_head
            _, levels = head.pixel_decoder(head._transform_inputs(feats))
            masks, cls = head.final_sets(feats, model.head_class_embeds(
                model.class_embeddings()))
        return model, dict(scores=result.seg_logits.data, labels=result.pred_sem_seg.data[0],
                           levels=levels, masks=masks, cls=cls, dense=feats[-1])

    for upsample in ('logits', 'original'):
        _, ref = run('fp32', upsample)
        model, out = run('bf16', upsample)
        assert model._precision_mode() == 'cast'
        assert model.inference_precision['run'] == 'bf16'
        head, backbone = model.decode_head, model.backbone
        kept, rest = kept_float32(head, FCCLIPHead.float32_modules)
        assert len(kept) == 2 * len(head.pixel_decoder.layers) + 3  # offsets, weights; class_mlp
        assert {m.weight.dtype for m in kept} == {torch.float32}
        assert {m.weight.dtype for m in rest} == {torch.bfloat16}
        assert head.decoder.logit_scale.dtype == head.void_embed.dtype == torch.float32
        kept, rest = kept_float32(backbone, OpenCLIPConvNeXt.float32_modules)
        assert kept and {m.weight.dtype for m in kept} == {torch.float32}
        assert {m.weight.dtype for m in rest} == {torch.bfloat16}
        assert all(lv.dtype == torch.bfloat16 for lv in out['levels'])
        for key in ('scores', 'masks', 'cls'):
            assert out[key].dtype == torch.float32, key
        # the pooled features go through the float32 CLIP head
        assert out['dense'].dtype == torch.bfloat16
        # measured: levels 1.1%, mask logits 2.4%, class logits 2.2% of
        # their largest magnitude (random tiny weights), scores 0.050
        for key in ('masks', 'cls'):
            err = float((out[key] - ref[key]).abs().max())
            assert 0 < err <= 0.05 * float(ref[key].abs().max()), (key, err)
        for lv, lv_ref in zip(out['levels'], ref['levels']):
            assert float((lv.float() - lv_ref).abs().max()) <= 0.03 * float(lv_ref.abs().max())
        assert float((out['scores'] - ref['scores']).abs().max()) <= 0.1
        assert float((out['labels'] == ref['labels']).float().mean()) >= LABEL_AGREEMENT


def test_san_cast_on_official_parity_fixture():
    """SAN as released (official weights of the parity fixture at tiny widths),
    bf16 with the CLIP tower and the head cast once (the default mode for
    ``--dtype bf16``): the side adapter and the recognising CLIP blocks in
    bf16, the joint-space projection, void embedding and mask logits
    float32, scores within bf16 rounding of float32 and the same labels."""
    from mmovss.testing.official_parity import list_fixtures, load_fixture
    from mmovss.testing.official_parity import san_official as parity

    paths = list_fixtures('san_official')
    if not paths:
        pytest.skip('no SAN parity fixture (tests/data/official_parity/san_official)')
    fixture = load_fixture(paths[0])
    image = fixture.inputs['image']
    out = {}
    for dtype in ('fp32', 'bf16'):
        model = parity.build_model(fixture)
        model.test_cfg.update(inference_dtype=dtype)
        result = parity.predict_resized(model, image, image.shape[-2:])
        sample = SegDataSample(metainfo=dict(ori_shape=image.shape[-2:],
                                             img_shape=image.shape[-2:]))
        inputs = model.data_preprocessor(dict(
            inputs=[torch.from_numpy(image).flip(0)], data_samples=[sample]), False)['inputs']
        with torch.no_grad():
            feats = model.extract_feat(inputs)
            masks, cls = model.decode_head.final_sets(
                feats, model.head_class_embeds(model.class_embeddings()))
        out[dtype] = dict(scores=result.seg_logits.data, labels=result.pred_sem_seg.data[0],
                          masks=masks, cls=cls)
    assert model._precision_mode() == 'cast'
    assert model.inference_precision['run'] == 'bf16'
    head = model.decode_head
    assert matrix_dtypes(head.side_adapter) == {torch.bfloat16}
    assert matrix_dtypes(head.recognizer) == {torch.bfloat16}
    assert head.recognizer.proj.dtype == head.void_embed.dtype == torch.float32
    assert {p.dtype for p in head.recognizer.blocks[0].attn.parameters()} == {torch.bfloat16}
    ref, low = out['fp32'], out['bf16']
    for key in ('scores', 'masks', 'cls'):
        assert low[key].dtype == torch.float32, key
    # measured: scores 0.028 (of at most 0.42), random tiny weights
    assert 0 < float((low['scores'] - ref['scores']).abs().max()) <= 0.06
    for key in ('masks', 'cls'):
        err = float((low[key] - ref[key]).abs().max())
        assert 0 < err <= 0.05 * float(ref[key].abs().max()), (key, err)
    assert float((low['labels'] == ref['labels']).float().mean()) >= LABEL_AGREEMENT


def test_heads_without_a_low_precision_path_refuse_the_cast_mode():
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'ovshapes',
                                       'dense-clip_tiny-clip_ovshapes.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['test_cfg'] = dict(mode='whole', inference_dtype='bf16', precision_mode='cast')
    with pytest.raises(ValueError, match=r"CLIPCosineHead has no low-precision path.*"
                       r"precision_mode=autocast"):
        MODELS.build(model_cfg)
    model_cfg['test_cfg']['precision_mode'] = 'autocast'
    MODELS.build(model_cfg)  # the default path stays available


def test_an_unchecked_backbone_keeps_autocast_beside_a_float32_head():
    """The towers-only cast path is the default only where the backbone was
    checked in bf16 (ResNets, open_clip ViTs): OVSeg's released Swin-B
    (mmseg's ``SwinTransformer``, whose shifted-window attention adds a
    float32 mask to bf16 scores) keeps autocast, and asking for 'cast'
    names the fix."""
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'ovshapes',
                                       'zegformer_tiny-clip_1k_ovshapes-seen.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['backbone'] = dict(type='SwinTransformer', embed_dims=32, depths=(2, 2, 2, 2),
                                 num_heads=(1, 2, 4, 8), window_size=4, strides=(4, 2, 2, 2),
                                 out_indices=(0, 1, 2, 3))
    model_cfg['decode_head']['in_channels'] = [32, 64, 128, 256]  # the Swin's stages
    model_cfg['test_cfg'] = dict(mode='whole', inference_dtype='bf16')
    assert MODELS.build(model_cfg)._precision_mode() == 'autocast'
    model_cfg['test_cfg']['precision_mode'] = 'cast'
    with pytest.raises(ValueError, match=r"SwinTransformer was not checked in low precision.*"
                       r"precision_mode=autocast"):
        MODELS.build(model_cfg)


def conv_dtypes(module, exclude=()):
    """{name: weight dtype} of the convolutions of ``module``."""
    return {name: m.weight.dtype for name, m in module.named_modules()
            if isinstance(m, nn.Conv2d) and name not in exclude}


def test_ovseg_cast_on_official_parity_fixture():
    """OVSeg as released (DeepLab ResNet-101c, mask-prompted CLIP on the
    crops; official weights of the parity fixture at tiny widths), bf16 on
    the cast path (the default for ``--dtype bf16``): the ResNet (stem
    convolution and batch norms float32, channels-last) and the crops' CLIP
    image tower are cast, the head stays float32 on float32 features; the
    class scores within bf16 rounding of float32 and the same labels."""
    from mmovss.converters.ovseg_official import convert
    from mmovss.testing.official_parity import list_fixtures, load_fixture
    from mmovss.testing.official_parity import ovseg as parity

    paths = [p for p in list_fixtures('ovseg')
             if load_fixture(p).meta.get('kind') != 'backbone']
    if not paths:
        pytest.skip('no OVSeg model parity fixture (tests/data/official_parity/ovseg)')
    fixture = load_fixture(paths[0])
    meta = fixture.meta
    state = convert(parity.dense_state(fixture.state_dict))
    image = torch.from_numpy(fixture.inputs['image']).float()[None]
    x = (image - torch.tensor(meta['pixel_mean']).view(1, 3, 1, 1)) / \
        torch.tensor(meta['pixel_std']).view(1, 3, 1, 1)
    shape = tuple(image.shape[-2:])
    out = {}
    for dtype in ('fp32', 'bf16'):
        model = MODELS.build(parity.tiny_model_cfg(meta))
        model.eval()
        model.load_state_dict(state, strict=True)
        model.test_cfg.update(inference_dtype=dtype)
        with torch.no_grad():
            out[dtype] = model.encode_decode(x, [dict(img_shape=shape, ori_shape=shape,
                                                      pad_shape=shape)])[0]
            feats = model.extract_feat(x)
    assert model._precision_mode() == 'cast'
    assert model.inference_precision['run'] == 'bf16'
    backbone, head = model.backbone, model.decode_head
    assert conv_dtypes(backbone)['stem.0'] == torch.float32  # takes the pixels
    assert set(conv_dtypes(backbone, exclude=('stem.0', )).values()) == {torch.bfloat16}
    norms = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and {t.dtype for m in norms for t in
                      list(m.parameters()) + [m.running_mean, m.running_var]} == {torch.float32}
    assert backbone.layer1[0].conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(f.dtype == torch.float32 for f in feats)  # the head gets float32 features
    clip = head.region_classifier.clip
    assert matrix_dtypes(clip.visual.transformer) == {torch.bfloat16}
    assert clip.visual.conv1.weight.dtype == clip.visual.proj.dtype == torch.float32
    assert head.region_classifier.precision_mode == 'cast'
    assert matrix_dtypes(head, exclude=('region_classifier', )) == {torch.float32}
    ref, low = out['fp32'], out['bf16']
    assert low.dtype == torch.float32
    # measured: 0.032 (autocast: 0.009) of scores up to 0.97, random tiny
    # weights; the difference is the crops' CLIP residual stream in bf16
    err = float((low - ref).abs().max())
    assert 0 < err <= 0.06, err
    assert float((low.argmax(0) == ref.argmax(0)).float().mean()) >= LABEL_AGREEMENT
    from mmovss.benchmarking.model import precision_context
    assert precision_context(model, 'bf16', 'cpu')[1] == \
        "bf16 (test_cfg.inference_dtype: image tower, crops' CLIP tower cast once)"


@pytest.mark.parametrize('kind', ['d2', 'v1c'])
def test_cast_resnet_keeps_the_stem_convolution_and_norms_float32(kind):
    """A ResNet cast as an image tower (``takes_pixels``): the convolution
    taking the pixels and every batch norm (detectron2's frozen one too)
    stay float32, every other convolution - each bottleneck's ``conv1``
    included, unlike a ViT's patch embedding of that name - is bf16, the
    tower runs channels-last and its maps are within bf16 rounding of
    float32. With the ZegFormer parity fixture the detectron2 ResNet is
    checked against the official code's own stage outputs."""
    from mmovss.models.backbones.d2_resnet import FrozenBatchNorm2d
    from mmovss.testing.official_parity import list_fixtures, load_fixture

    torch.manual_seed(0)
    stages, x = None, torch.randn(1, 3, 96, 128)
    if kind == 'd2':
        paths = list_fixtures('zegformer')
        if paths:
            from mmovss.converters.zegformer_official import convert
            from mmovss.testing.official_parity.zegformer import build_tiny_model
            fixture = load_fixture(paths[0])
            tower, _ = build_tiny_model(fixture.meta)
            state = convert(fixture.state_dict)
            tower.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                                   if k.startswith('backbone.')}, strict=True)
            values = fixture.meta['values']
            image = torch.from_numpy(fixture.inputs['image'])[None].float()
            x = (image - torch.tensor(values['pixel_mean']).view(1, 3, 1, 1)) / \
                torch.tensor(values['pixel_std']).view(1, 3, 1, 1)
            stages = [torch.from_numpy(fixture.stages[f'backbone/res{i}']) for i in range(2, 6)]
        else:
            tower = MODELS.build(dict(type='D2ResNet', depth=50, stem_channels=16,
                                      res2_channels=32, width_per_group=8))
        first, norm_type = 'stem.conv1', FrozenBatchNorm2d
    else:
        tower = MODELS.build(dict(type='ResNetV1c', depth=50, stem_channels=16,
                                  base_channels=8, norm_cfg=dict(type='BN')))
        first, norm_type = 'stem.0', nn.BatchNorm2d
    tower.eval()
    norms = [m for m in tower.modules() if isinstance(m, norm_type)]
    if kind == 'v1c':  # non-trivial statistics
        for m in norms:
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    with torch.no_grad():
        ref = tower(x)
        info = lp.cast_tower(tower, torch.bfloat16, takes_pixels=True)
        out = tower(x)
    assert info['channels_last'] and lp.pixel_convolution(tower) == first
    dtypes = conv_dtypes(tower)
    assert dtypes.pop(first) == torch.float32
    assert set(dtypes.values()) == {torch.bfloat16}
    assert any(name.endswith('.conv1') for name in dtypes)
    assert norms and {t.dtype for m in norms for t in m.state_dict().values()
                      if t.is_floating_point()} == {torch.float32}
    for i, (o, r) in enumerate(zip(out, ref)):
        assert o.dtype == torch.bfloat16
        # measured 0.4-1.7% (relative norm), ResNet-101c at 640 x 864: 0.7-1.7%
        assert float((o.float() - r).norm() / r.norm()) <= 0.03, i
        if stages is not None:  # and float32 equals the official code
            torch.testing.assert_close(r[0] if stages[i].dim() == 3 else r, stages[i],
                                       rtol=1e-4, atol=1e-4)


def test_float32_after_a_cast_is_refused_and_autocast_keeps_float32_weights():
    fp32, bf16 = pair('dense-refine_tiny-clip_1k_ovshapes-seen.py')
    x = ovshapes_scenes(1)
    with torch.no_grad():
        bf16.inference(x, metas(1))
        bf16.test_cfg['inference_dtype'] = 'fp32'
        with pytest.raises(ValueError, match='rebuild the model'):
            bf16.inference(x, metas(1))
        fp32.test_cfg.update(inference_dtype='bf16', precision_mode='autocast')
        fp32.inference(x, metas(1))
    assert matrix_dtypes(fp32.decode_head) == {torch.float32}
    assert fp32.inference_precision is None


@pytest.mark.parametrize('config,mode', [
    ('catseg_tiny-clip_1k_ovshapes-seen.py', 'cast'),
    ('lseg_tiny-clip_1k_ovshapes-seen.py', 'cast'),
    ('fcclip_tiny-clip_1k_ovshapes-seen.py', 'cast'),
    ('san_tiny-clip_1k_ovshapes-seen.py', 'cast'),
    ('openseg_tiny-clip_1k_ovshapes-seen-captions.py', 'cast'),
    ('zegformer_tiny-clip_1k_ovshapes-seen.py', 'cast'),
    ('dense-clip_tiny-clip_ovshapes.py', 'autocast'),
])
def test_default_precision_mode_follows_the_head(config, mode):
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'ovshapes', config))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['test_cfg'] = dict(mode='whole', inference_dtype='bf16')
    assert MODELS.build(model_cfg)._precision_mode() == mode


@pytest.mark.parametrize('config', ['lseg_tiny-clip_1k_ovshapes-seen.py',
                                    'zegformer_tiny-clip_1k_ovshapes-seen.py'])
def test_slow_bf16_cpu_runs_the_head_in_float32(monkeypatch, config):
    """The fallback runs float32 throughout: the head, and for ZegFormer
    the crops' CLIP (neither cast nor autocast)."""
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=False, bf16_gflops=1.0, fp32_gflops=2.0,
        message='bf16 matrix products are slower than fp32 on this CPU'))
    fp32, bf16 = pair(config)
    x = ovshapes_scenes(2)
    with pytest.warns(UserWarning, match='running float32 instead'), torch.no_grad():
        out = bf16.inference(x, metas(2))
    with torch.no_grad():
        ref = fp32.inference(x, metas(2))
    assert bf16.inference_precision['run'] == 'fp32'
    assert matrix_dtypes(bf16.decode_head) == {torch.float32}
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    if hasattr(bf16.decode_head, 'region_classifier'):
        classifier = bf16.decode_head.region_classifier
        assert classifier.precision_mode == 'cast'
        pixels = bf16.pixel_values(x)[0]
        masks = torch.zeros(3, *pixels.shape[-2:], dtype=torch.bool)
        for i in range(3):
            masks[i, 8 * i:8 * i + 30, 4 * i:4 * i + 40] = True
        with torch.no_grad():  # the crop forwards ran float32 too
            torch.testing.assert_close(
                classifier.region_embeddings(pixels, masks),
                fp32.decode_head.region_classifier.region_embeddings(pixels, masks),
                rtol=0, atol=1e-6)


@pytest.fixture(scope='module')
def tiny_world(make_ovshapes_world):
    """A tiny OVShapes world on disk (4 validation scenes)."""
    return make_ovshapes_world(num_val=4, seed=5)


def _checkpoint(tmp_path, model):
    path = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return path


def test_agreement_tool_pairs_the_runs(tmp_path, tiny_world, monkeypatch):
    from mmovss.benchmarking.precision import compare_precisions, format_precision_report

    config = os.path.join(REPO, 'configs', 'ovshapes', 'dense-refine_tiny-clip_1k_ovshapes-seen.py')
    fp32, _ = pair('dense-refine_tiny-clip_1k_ovshapes-seen.py')
    checkpoint = _checkpoint(tmp_path, fp32)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': tiny_world})
    result = compare_precisions(cfg, checkpoint, 'bf16', 'cast')
    assert result['images'] == 4 and result['pixels'] == 4 * 64 * 64
    assert result['run'] == 'bf16' and result['precision_mode'] == 'cast'
    assert 0.9 <= result['labels_equal'] < 1.0  # bf16 flips a few near ties
    assert set(result['fp32']) == set(result['low']) and 'mIoU' in result['diff']
    assert result['diff']['mIoU'] == pytest.approx(
        result['low']['mIoU'] - result['fp32']['mIoU'])
    assert 'labels equal' in format_precision_report(result)
    # a CPU without fast bf16 runs float32: the same labels and metrics
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=False, bf16_gflops=1.0, fp32_gflops=2.0, message='slower'))
    with pytest.warns(UserWarning):
        same = compare_precisions(cfg, checkpoint, 'bf16', 'cast', max_images=2)
    assert same['run'] == 'fp32' and same['images'] == 2
    assert same['labels_equal'] == 1.0
    assert all(abs(v) < 1e-9 for v in same['diff'].values())


def test_agreement_tool_command_line(tmp_path, tiny_world):
    import subprocess
    config = os.path.join(REPO, 'configs', 'ovshapes', 'dense-refine_tiny-clip_1k_ovshapes-seen.py')
    tool = os.path.join(REPO, 'tools', 'analysis_tools', 'precision_agreement.py')
    missing = subprocess.run([sys.executable, tool, config, str(tmp_path / 'none.pth')],
                             capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and 'none.pth' in missing.stderr
    fp32, _ = pair('dense-refine_tiny-clip_1k_ovshapes-seen.py')
    checkpoint = _checkpoint(tmp_path, fp32)
    out = tmp_path / 'result.json'
    done = subprocess.run([sys.executable, tool, config, checkpoint, '--max-images', '2',
                           '--precision-mode', 'cast', '--json', str(out), '--cfg-options',
                           f'test_dataloader.dataset.data_root={tiny_world}'],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'labels equal' in done.stdout and 'mIoU' in done.stdout
    import json
    result = json.loads(out.read_text())
    assert result['images'] == 2 and np.isfinite(result['labels_equal'])


def test_agreement_tool_refuses_a_foreign_checkpoint_and_an_empty_test_set(tmp_path, tiny_world):
    """Before: mmengine's 'The model and loaded state dict do not match
    exactly' (a RuntimeError traceback after hundreds of key names), and a
    ZeroDivisionError in the sampler for a test set of no image."""
    from mmovss.benchmarking.precision import compare_precisions

    config = os.path.join(REPO, 'configs', 'ovshapes', 'dense-refine_tiny-clip_1k_ovshapes-seen.py')
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': tiny_world})
    foreign = str(tmp_path / 'foreign.pth')
    torch.save(dict(state_dict=torch.nn.Linear(2, 3).state_dict(), meta={}), foreign)
    with pytest.raises(ValueError, match=r"foreign.pth' does not fit the model"):
        compare_precisions(cfg, foreign, 'bf16', max_images=1)
    cfg.merge_from_dict({'test_dataloader.dataset.indices': 0,
                         'test_dataloader.dataset.serialize_data': False})
    with pytest.raises(ValueError, match='the test set of this config has no image'):
        compare_precisions(cfg, foreign, 'bf16')


def test_agreement_tool_checks_an_explicit_vocabulary_against_the_test_set(tmp_path, tiny_world):
    """As tools/test.py (DatasetVocabularyHook); before: three names scored
    against the 40 labels of the test set without a word."""
    from mmovss.benchmarking.precision import compare_precisions

    config = os.path.join(REPO, 'configs', 'ovshapes', 'dense-refine_tiny-clip_1k_ovshapes-seen.py')
    fp32, _ = pair('dense-refine_tiny-clip_1k_ovshapes-seen.py')
    checkpoint = _checkpoint(tmp_path, fp32)
    cfg = Config.fromfile(config)
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': tiny_world,
                         'model.vocabulary': ['cat', 'dog', 'sky']})
    with pytest.raises(ValueError, match='explicit vocabulary .* does not match the test dataset'):
        compare_precisions(cfg, checkpoint, 'bf16', max_images=1)


def test_a_model_being_trained_validates_without_casting():
    """Validation inside training must not cast the weights being trained."""
    _, model = pair('dense-refine_tiny-clip_1k_ovshapes-seen.py')
    assert not getattr(model, '_being_trained', False)  # building is not training
    model.train()
    model.eval()  # as mmengine's validation loop does
    x = ovshapes_scenes(1)
    with pytest.warns(UserWarning, match='not used while the model is being trained'), \
            torch.no_grad():
        out = model.inference(x, metas(1))
    assert out.dtype == torch.float32
    assert matrix_dtypes(model.decode_head) == {torch.float32}
    assert matrix_dtypes(model.backbone) == {torch.float32}
    assert model.inference_precision is None


def test_training_a_cast_model_is_refused():
    _, model = pair('lseg_tiny-clip_1k_ovshapes-seen.py')
    with torch.no_grad():
        model.inference(ovshapes_scenes(1), metas(1))
    assert torch.bfloat16 in matrix_dtypes(model.decode_head)
    with pytest.raises(RuntimeError, match='load its checkpoint again before training'):
        model.train()


def test_sam_clip_cast_keeps_sam_float32():
    """SAM + CLIP on the cast path (its default for bf16): the image tower
    and the crops' CLIP are cast, SAM (inside the head) stays float32, and
    the labels agree with float32 (random tiny SAM, the shipped tiny CLIP;
    measured 99.96%)."""
    fp32, bf16 = pair('sam-clip_random-tiny-sam-tiny-clip_ovshapes.py')
    x = ovshapes_scenes(2)
    with torch.no_grad():
        ref = fp32.inference(x, metas(2))
        out = bf16.inference(x, metas(2))
    assert bf16._precision_mode() == 'cast'
    head = bf16.decode_head
    assert matrix_dtypes(head.region_classifier.clip.visual.transformer) == {torch.bfloat16}
    assert matrix_dtypes(bf16.backbone) >= {torch.bfloat16}
    assert matrix_dtypes(head, exclude=('region_classifier', )) == {torch.float32}
    assert out.dtype == torch.float32
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) >= 0.98
