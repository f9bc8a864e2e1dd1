"""Released ZegFormer models: the checkpoint converter (official key layout at
tiny shapes, from the committed parity fixture), detectron2's ResNet against
stored detectron2 outputs, the official options of the head and the region
classifier, and the official configs.

Fixtures: ``tests/data/official_parity/zegformer/seed0`` (the official model's
state dict and stage outputs) and ``d2_resnet_r50_tiny.npz`` (detectron2's
``build_resnet_backbone`` on a tiny R-50: weights, input, res2-res5 outputs),
both written by ``tools/parity/zegformer_reference.py`` (README there).
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch

import mmovss  # noqa: F401
from mmovss.converters import zegformer_official as zc
from mmovss.converters.common import ConversionError
from mmovss.converters.d2_resnet import d2_resnet_to_mmovss
from mmovss.models.utils.region_clip_classifier import mask_boxes, zegformer_mask_boxes
from mmovss.testing.official_parity import load_fixture
from mmovss.testing.official_parity.zegformer import build_tiny_model

from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

ROOT = osp.join(osp.dirname(__file__), 'data', 'official_parity', 'zegformer')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ATOL = 1e-4  # float32 rounding of a 16-block ResNet


@pytest.fixture(scope='module')
def fixture():
    return load_fixture(osp.join(ROOT, 'seed0'))


@pytest.fixture(scope='module')
def tiny(fixture):
    return build_tiny_model(fixture.meta)


# ------------------------------------------------------------- converter
def test_every_official_key_is_mapped_or_dropped_and_loads_strictly(fixture, tiny):
    state = fixture.state_dict
    out = zc.convert({'model': state, 'iteration': 1})  # detectron2's file layout
    backbone, head = tiny
    ours = {f'backbone.{k}' for k in backbone.state_dict()} | \
        {f'decode_head.{k}' for k in head.state_dict()}
    assert set(out) == ours
    dropped = [k for k in state if zc._dropped(k)]
    assert sorted(dropped) == sorted(['sem_seg_head.predictor.logit_scale',
                                      'sem_seg_head.predictor.clip_model.logit_scale',
                                      'criterion.empty_weight'])
    assert len(out) == len(state) - len(dropped)
    assert zc.official_temperature(state) == pytest.approx(0.01, rel=1e-5)


def test_released_layout_without_clip_converts(fixture):
    # the released training checkpoints hold no CLIP (CLIP_CLASSIFICATION False)
    state = {k: v for k, v in fixture.state_dict.items() if 'clip_model' not in k}
    out = zc.convert(state)
    assert not any('region_classifier' in k for k in out)
    assert 'decode_head.void_embed' in out and 'backbone.stem.conv1.weight' in out


def test_clip_text_tower_maps_to_the_text_encoder(fixture):
    state = dict(fixture.state_dict)
    clip = 'sem_seg_head.predictor.clip_model.'
    text = {'token_embedding.weight': (10, 8), 'positional_embedding': (77, 8),
            'ln_final.weight': (8,), 'ln_final.bias': (8,), 'text_projection': (8, 512)}
    text.update({f'transformer.resblocks.0.{k}': (8,) for k in zc._BLOCK_KEYS})
    state.update({clip + k: torch.zeros(s) for k, s in text.items()})
    out = zc.convert(state)
    assert {f'text_encoder.tower.{k}' for k in text} <= set(out)
    del state[clip + 'transformer.resblocks.0.ln_2.bias']
    with pytest.raises(ConversionError, match='missing'):
        zc.convert(state)


@pytest.mark.parametrize('drop', [
    'sem_seg_head.predictor.transformer.decoder.layers.1.linear2.weight',
    'sem_seg_head.pixel_decoder.adapter_2.norm.bias',
    'sem_seg_head.predictor.clip_model.visual.ln_post.weight',
    'backbone.res4.3.conv2.norm.running_var',
])
def test_truncated_checkpoints_are_refused(fixture, drop):
    state = dict(fixture.state_dict)
    del state[drop]
    with pytest.raises(ConversionError, match='missing'):
        zc.convert(state)


def test_whole_missing_block_or_layer_is_refused(fixture):
    state = {k: v for k, v in fixture.state_dict.items()
             if not k.startswith('backbone.res4.5.')}
    with pytest.raises(ConversionError, match='blocks per stage'):
        zc.convert(state)
    state = {k: v for k, v in fixture.state_dict.items()
             if '.decoder.layers.0.' not in k}
    with pytest.raises(ConversionError, match='missing'):
        zc.convert(state)


def test_foreign_and_unknown_keys_are_refused(fixture):
    foreign = {'backbone.conv1.weight': torch.zeros(1), 'decode_head.conv_seg.weight':
               torch.zeros(1)}
    assert not zc.matches(foreign)
    with pytest.raises(ConversionError, match='Not a ZegFormer'):
        zc.convert(foreign)
    state = dict(fixture.state_dict)
    state['sem_seg_head.predictor.class_embed.weight'] = torch.zeros(3)
    with pytest.raises(ConversionError, match='unknown'):
        zc.convert(state)
    state = dict(fixture.state_dict)
    state['backbone.res6.0.conv1.weight'] = torch.zeros(3)
    with pytest.raises(ConversionError, match='unknown'):
        zc.convert(state)
    assert zc.matches(fixture.state_dict)


# ------------------------------------------------------- detectron2 ResNet
def test_d2_resnet_equals_detectron2_outputs():
    init_default_scope('mmseg')
    data = np.load(osp.join(ROOT, 'd2_resnet_r50_tiny.npz'))
    shapes = json.loads(str(data['state_shapes']))
    flat = torch.from_numpy(data['state_flat'])
    state, start = {}, 0
    for key, shape in zip(data['state_keys'], shapes):
        n = int(np.prod(shape))
        state[str(key)] = flat[start:start + n].reshape(shape)
        start += n
    assert start == flat.numel()
    net = MODELS.build(dict(type='D2ResNet', depth=50, stem_channels=4, res2_channels=4,
                            width_per_group=1, stride_in_1x1=True, res5_dilation=2)).eval()
    net.load_state_dict(d2_resnet_to_mmovss(state, src_prefix='', dst_prefix=''),
                        strict=True)
    with torch.no_grad():
        outs = net(torch.from_numpy(data['input']))
    for name, out in zip(('res2', 'res3', 'res4', 'res5'), outs):
        ref = torch.from_numpy(data[f'output/{name}'])
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    # the other stride convention gives other outputs (the test can fail)
    other = MODELS.build(dict(type='D2ResNet', depth=50, stem_channels=4, res2_channels=4,
                              width_per_group=1, stride_in_1x1=False,
                              res5_dilation=2)).eval()
    other.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert not torch.allclose(other(torch.from_numpy(data['input']))[-1], outs[-1],
                                  atol=ATOL)


def test_d2_resnet_freeze_at_and_bad_arguments():
    init_default_scope('mmseg')
    net = MODELS.build(dict(type='D2ResNet', depth=50, stem_channels=4, res2_channels=8,
                            width_per_group=2, freeze_at=2))
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert not any(p.requires_grad for p in net.res2.parameters())
    assert all(p.requires_grad for p in net.res3.parameters())
    with pytest.raises(ValueError, match='depth'):
        MODELS.build(dict(type='D2ResNet', depth=42))
    with pytest.raises(ValueError, match='norm'):
        MODELS.build(dict(type='D2ResNet', depth=50, norm='GN'))


# ------------------------------------------------ options of the official code
def test_zegformer_boxes_inclusive_and_degenerate():
    masks = torch.zeros(3, 6, 8, dtype=torch.bool)
    masks[0, 1:4, 2:5] = True          # rows 1-3, columns 2-4
    masks[1, 2, 1:6] = True            # a single row: zero area
    boxes = zegformer_mask_boxes(masks)
    exclusive = mask_boxes(masks)
    # inclusive maxima: one pixel less than the exclusive boxes
    torch.testing.assert_close(boxes[0, 2:], exclusive[0, 2:] - 1)
    torch.testing.assert_close(boxes[0, :2], exclusive[0, :2])
    # zero-area and empty masks: the whole image, as mask_boxes' empty masks
    torch.testing.assert_close(boxes[1], exclusive[2])
    torch.testing.assert_close(boxes[2], exclusive[2])


def test_classify_empty_encodes_every_query(tiny):
    _, head = tiny
    classifier = head.region_classifier
    pixels = torch.rand(1, 3, 32, 32) * 255
    logits = torch.full((1, 2, 8, 8), -10.0)
    logits[0, 0, 2:5, 2:6] = 10.0      # query 1 is empty
    from mmovss.models.text_encoders.class_embeddings import ClassEmbeddings
    from mmovss.vocab import Vocabulary
    embeds = ClassEmbeddings(torch.nn.functional.normalize(torch.randn(3, 512), dim=-1),
                             torch.arange(3), Vocabulary.build(['a', 'b', 'c']))
    with torch.no_grad():
        out, valid = classifier(pixels, logits, embeds)
        classifier.classify_empty = False
        out_default, valid_default = classifier(pixels, logits, embeds)
        classifier.classify_empty = True
    assert valid.all() and valid_default.tolist() == [[True, False]]
    assert out[0, 1].abs().sum() > 0 and out_default[0, 1].abs().sum() == 0
    torch.testing.assert_close(out[0, 0], out_default[0, 0])


def test_head_void_and_upsample_options(fixture, tiny):
    _, head = tiny
    from mmovss.models.text_encoders.class_embeddings import ClassEmbeddings
    from mmovss.vocab import Vocabulary
    n = len(fixture.meta['classes'])
    embeds = ClassEmbeddings(torch.from_numpy(fixture.inputs['text_features']),
                             torch.arange(n), Vocabulary.build(fixture.meta['classes']))
    states = torch.randn(1, 5, head.segment_proj.layers[0].in_features)
    with torch.no_grad():
        raw = head.seg_logits(states, embeds)
        head.normalize_void = True
        normed = head.seg_logits(states, embeds)
        head.normalize_void = False
    torch.testing.assert_close(raw[..., :-1], normed[..., :-1])
    # the official void logit is the raw embedding's: scaled by its norm
    ratio = raw[..., -1] / normed[..., -1]
    torch.testing.assert_close(ratio, torch.full_like(ratio, float(head.void_embed.norm())))


# ------------------------------------------------------------------ configs
OFFICIAL_CONFIGS = sorted(
    osp.join(REPO, 'configs', 'zegformer', f) for f in
    __import__('os').listdir(osp.join(REPO, 'configs', 'zegformer')) if 'official' in f
    and f.endswith('.py'))


def test_metafile_lists_every_official_config():
    import yaml
    with open(osp.join(REPO, 'configs', 'zegformer', 'metafile.yaml')) as f:
        meta = yaml.safe_load(f)
    configs = {osp.join(REPO, m['Config']) for m in meta['Models']}
    assert configs == set(OFFICIAL_CONFIGS) and OFFICIAL_CONFIGS
    for model in meta['Models']:
        assert model['Weights'].startswith('https://drive.google.com/')


@pytest.mark.parametrize('path', OFFICIAL_CONFIGS, ids=osp.basename)
def test_official_configs_have_the_released_options(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    head = cfg.model.decode_head
    assert cfg.model.backbone.type == 'D2ResNet' and not cfg.model.backbone.stride_in_1x1
    assert head.normalize_void is False and head.upsample_masks is True
    assert head.region_classifier.box_style == 'zegformer'
    assert head.region_classifier.mask_before_crop and head.region_classifier.classify_empty
    if 'gzss' in osp.basename(path) and 'ade' not in osp.basename(path):
        assert head.calibration == pytest.approx(0.1) or head.mode == 'img'


def test_released_checkpoint_plus_clip_loads_the_whole_segmentor_strictly(fixture):
    """A released-layout file (no CLIP) + an OpenAI-layout CLIP state dict
    fill every key of the official-config segmentor (text encoder, region
    text encoder, region CLIP), which then segments the fixture image."""
    import open_clip

    from mmovss.testing.official_parity.zegformer import _tiny_cfg
    init_default_scope('mmseg')
    cfg = _tiny_cfg(fixture.meta)
    clip_cfg = cfg['decode_head']['region_classifier']['clip']['model_cfg']
    text = dict(type='OpenCLIPTextEncoder', model_cfg=clip_cfg, quick_gelu=True,
                templates=['A photo of a {} in the scene'])
    cfg['decode_head']['region_text_encoder'] = dict(text, templates=['There is a {} in the scene'])
    values = fixture.meta['values']
    model = MODELS.build(dict(
        type='TwoStageEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=values['pixel_mean'],
                               std=values['pixel_std'], bgr_to_rgb=False),
        backbone=cfg['backbone'], text_encoder=text, decode_head=cfg['decode_head'],
        vocabulary=fixture.meta['classes']))
    torch.manual_seed(0)
    clip_sd = open_clip.CLIP(**clip_cfg, quick_gelu=True).state_dict()
    released = {k: v for k, v in fixture.state_dict.items() if 'clip_model' not in k}
    with pytest.raises(RuntimeError, match='Missing'):
        model.load_state_dict(zc.convert(released), strict=True)
    model.load_state_dict(zc.convert(released, clip=clip_sd), strict=True)
    with pytest.raises(ConversionError, match='missing'):
        zc.convert(released, clip={k: v for k, v in clip_sd.items() if 'visual' not in k})
    model.eval()
    with torch.no_grad():
        scores = model._forward(torch.from_numpy(fixture.inputs['image'])[None])
    assert scores.shape[-2:] == fixture.inputs['image'].shape[-2:]
    assert scores.shape[1] == len(fixture.meta['classes']) and torch.isfinite(scores).all()


def test_released_layout_is_recognised_as_zegformer(fixture):
    from mmovss.converters.formats import detect_format
    released = {k: v for k, v in fixture.state_dict.items() if 'clip_model' not in k}
    assert detect_format({'model': released}) == 'zegformer_official'
