"""Official FC-CLIP checkpoints: key conversion, refusals, and the official
behaviour options of our model.

The official-layout state dict is the committed parity fixture's (written by
the official code at tiny shapes, tests/data/official_parity/fcclip/seed0),
so the key layout is the real one (``backbone.clip_model.*``,
``sem_seg_head.*``, ``void_embedding``, ``criterion.empty_weight``).
"""
import os.path as osp

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.converters import formats
from mmovss.converters.common import ConversionError
from mmovss.converters.fcclip_official import DROPPED, FORMAT, convert, matches
from mmovss.converters.files import CONVERTED_META_KEY
from mmovss.testing.official_parity import default_fixture_root, load_fixture
from mmovss.testing.official_parity import fcclip as parity

from mmseg.registry import MODELS

FIXTURE = osp.join(default_fixture_root(), 'fcclip', 'seed0')


@pytest.fixture(scope='module')
def fixture():
    return load_fixture(FIXTURE)


@pytest.fixture(scope='module')
def official(fixture):
    return parity.official_state_dict(fixture)


@pytest.fixture(scope='module')
def model(fixture):
    return build(fixture.meta)


def build(meta, gated=True, **head):
    parity.register_parity_convnext()
    cfg = parity.tiny_model_cfg(meta, gated)
    cfg['decode_head'].update(head)
    if head.get('ov_pooling') == 'embeddings':
        cfg['backbone']['dense_output'] = 'embeddings'
    return MODELS.build(cfg).eval()


def test_every_official_key_is_mapped_or_dropped(model, official):
    assert FORMAT == 'fcclip_official'
    assert formats.format_module(FORMAT).convert is convert
    assert matches(official) and matches({'model': official})
    assert formats.detect_format(official) == FORMAT  # and no other format claims it
    out = convert({'model': official})
    dropped = [k for k in official if k in DROPPED]
    assert sorted(dropped) == ['backbone.clip_model.logit_scale', 'criterion.empty_weight']
    assert len(out) == len(official) - len(dropped)  # one mmovss key per kept key
    # the converted keys are exactly our model's (strict load, nothing left over)
    missing, unexpected = model.load_state_dict(out, strict=False)
    assert not missing and not unexpected
    # values are carried unchanged
    pairs = {
        'sem_seg_head.predictor.query_embed.weight': 'decode_head.decoder.query_pos.weight',
        'sem_seg_head.predictor.transformer_self_attention_layers.1.norm.bias':
        'decode_head.decoder.layers.1.norms.1.bias',
        'sem_seg_head.pixel_decoder.transformer.encoder.layers.0.linear2.weight':
        'decode_head.pixel_decoder.layers.0.ffn.2.weight',
        'sem_seg_head.pixel_decoder.adapter_1.norm.weight':
        'decode_head.pixel_decoder.lateral.1.weight',
        'backbone.clip_model.visual.head.mlp.fc1.weight': 'backbone.visual.head.mlp.fc1.weight',
        'backbone.clip_model.ln_final.bias': 'text_encoder.tower.ln_final.bias',
        'void_embedding.weight': 'decode_head.void_embed',
    }
    for src, dst in pairs.items():
        assert torch.equal(out[dst], official[src]), (src, dst)


def test_foreign_state_dicts_are_refused(model, official):
    ours = model.state_dict()
    assert not matches(ours)
    with pytest.raises(ConversionError, match=r'unknown key\(s\).*backbone\.visual\.'):
        convert(ours)
    assert not matches({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}})
    assert not matches([1, 2])
    extra = dict(official, **{'sem_seg_head.predictor.input_proj.0.weight': torch.zeros(1)})
    with pytest.raises(ConversionError, match='input_proj.0.weight'):
        convert(extra)


@pytest.mark.parametrize('drop', [
    'sem_seg_head.predictor.transformer_ffn_layers.2.linear1.weight',
    'sem_seg_head.pixel_decoder.transformer.encoder.layers.0.norm2.weight',
    'void_embedding.weight',
    'backbone.clip_model.token_embedding.weight',
])
def test_truncated_state_dict_is_refused(official, drop):
    partial = {k: v for k, v in official.items() if k != drop}
    with pytest.raises(ConversionError, match=r'1 missing key.*' + drop.replace('.', r'\.')):
        convert(partial)


def test_truncated_trunk_stage_is_refused(official):
    partial = {k: v for k, v in official.items()
               if not k.startswith('backbone.clip_model.visual.trunk.stages.3.')}
    with pytest.raises(ConversionError, match=r'stages\.3'):
        convert(partial)


def test_resnet_clip_checkpoint_is_refused_with_reason(official):
    resnet = dict(official)
    resnet['backbone.clip_model.visual.attnpool.c_proj.weight'] = torch.zeros(2, 2)
    with pytest.raises(ConversionError, match='ResNet CLIP'):
        convert(resnet)


def test_tool_wrapper_converts_and_refuses(tmp_path, official):
    from mmovss.testing.tools import load_tool
    tool = load_tool('model_converters/fcclip_official_to_mmovss.py')
    src, dst = tmp_path / 'official.pth', tmp_path / 'ours.pth'
    torch.save({'model': official}, src)
    tool.main([str(src), str(dst)])
    saved = torch.load(dst, weights_only=True)
    assert saved['meta'][CONVERTED_META_KEY]['format'] == FORMAT
    assert set(saved['state_dict']) == set(convert(official))
    foreign = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}}, foreign)
    with pytest.raises(SystemExit, match='not a fcclip_official checkpoint'):
        tool.main([str(foreign), str(tmp_path / 'x.pth')])


def test_features_pooling_needs_the_fcclip_segmentor(fixture):
    parity.register_parity_convnext()
    cfg = parity.tiny_model_cfg(fixture.meta, True)
    cfg['backbone']['dense_output'] = 'embeddings'
    with pytest.raises(ValueError, match="dense_output='features'"):
        MODELS.build(cfg)
    cfg = parity.tiny_model_cfg(fixture.meta, True)
    cfg['type'] = 'OpenVocabEncoderDecoder'
    model = MODELS.build(cfg).eval()
    with pytest.raises(RuntimeError, match='FCCLIPEncoderDecoder'):
        model.decode_head.pooled_clip_embeddings([torch.zeros(1, 32, 2, 2)],
                                                 torch.zeros(1, 6, 4, 4))
    with pytest.raises(ValueError, match='ov_pooling'):
        build(fixture.meta, ov_pooling='pixels')


def test_default_options_differ_from_the_official_code(fixture, official):
    """Our defaults (pool the dense embeddings; resize the score map) are not the
    official computation: each official option is needed for parity."""
    meta, stages = fixture.meta, fixture.stages
    state = convert(official)
    model = build(meta, ov_pooling='embeddings', mask_upsample='scores')
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        model.text_encoder.logit_scale.copy_(official['backbone.clip_model.logit_scale'].exp())
        _, result = parity._predict(model, fixture.inputs['image'])
        feats = model.extract_feat(_)
        head = model.decode_head
        masks, _ = head.forward_sets(feats, model.class_embeddings())
        pooled = head.pooled_clip_embeddings(feats, masks[-1])
    assert (pooled - torch.from_numpy(stages['ov/pooled_embeddings'])).abs().max() > 1e-3
    final = torch.from_numpy(stages['final/gated'])
    assert (result.seg_logits.data - final).abs().max() > 1e-3


def test_original_size_upsampling_refuses_what_it_cannot_do(model):
    from mmseg.structures import SegDataSample
    head = model.decode_head
    head.mask_upsample = 'original'
    try:
        sample = SegDataSample(metainfo=dict(ori_shape=(30, 40), img_shape=(64, 64),
                                             flip=True, flip_direction='horizontal'))
        with pytest.raises(NotImplementedError, match='flip'):
            model.predict(torch.zeros(1, 3, 64, 64), [sample])
        model.test_cfg['mode'] = 'slide'
        with pytest.raises(ValueError, match="test_cfg.mode='whole'"):
            model.predict(torch.zeros(1, 3, 64, 64), [sample])
    finally:
        head.mask_upsample = 'logits'
        model.test_cfg['mode'] = 'whole'
    with pytest.raises(ValueError, match='mask_upsample'):
        build(model_meta(), mask_upsample='full')


def model_meta():
    return load_fixture(FIXTURE).meta
