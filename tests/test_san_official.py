"""SAN as released by its authors: the converter of the official key layout.

The official-layout state dicts come from the committed fixture
(tests/data/official_parity/san_official/seed0, written by the official code:
see its README). Its blocks are re-numbered to the depths of the released
ViT-B/16 and ViT-L/14 checkpoints (9 + 3 and 18 + 6 CLIP blocks, 12 text
blocks, 8 side-adapter blocks, fusion layers 0-3) to check that layout at tiny
widths. Parity of the outputs is tests/test_official_parity.py.
"""
import copy
import os.path as osp
import re

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.converters import san_mmseg, san_official
from mmovss.converters.common import ConversionError
from mmovss.converters.formats import detect_format
from mmovss.testing.official_parity import default_fixture_root, load_fixture
from mmovss.testing.official_parity.san_official import TINY, tiny_config
from mmovss.testing.tools import load_tool

FIXTURE = osp.join(default_fixture_root(), 'san_official', 'seed0')
# released depths: CLIP blocks, FEATURE_LAST_LAYER_IDX, FUSION_MAP sources
RELEASED = {
    'vit-b16': dict(clip_layers=12, start=9, sources=(0, 3, 6, 9)),
    'vit-l14': dict(clip_layers=24, start=18, sources=(0, 6, 12, 18)),
}
BLOCK_GROUPS = ('clip_visual_extractor.resblocks', 'clip_rec_head.resblocks',
                'ov_classifier.transformer.resblocks', 'side_adapter_network.vit_model.blocks')


@pytest.fixture(scope='module')
def official():
    return load_fixture(FIXTURE).state_dict


def _build(tiny, class_names=('cat', 'dog')):
    from mmseg.registry import MODELS
    cfg = tiny_config(tiny, list(class_names), 0.7, 32)
    cfg['data_preprocessor'] = MODELS.build(cfg['data_preprocessor'])
    return MODELS.build(cfg)


def _renumber(state, depths):
    """The fixture's keys with each block group re-numbered to ``depths``."""
    out = {}
    pattern = re.compile(r'^(' + '|'.join(re.escape(g) for g in BLOCK_GROUPS) +
                         r')\.(\d+)\.(.+)$')
    for key, value in state.items():
        m = pattern.match(key)
        if m is None:
            out[key] = value
        elif m.group(2) == '0':
            for i in range(depths[m.group(1)]):
                out[f'{m.group(1)}.{i}.{m.group(3)}'] = value.clone()
    return out


def test_fixture_layout_every_key_accounted_and_loads_strictly(official):
    out = san_official.convert(official)
    dropped = [k for k in official if k in san_official.DROPPED]
    assert sorted(dropped) == sorted(['ov_classifier.logit_scale', 'ov_classifier.attn_mask',
                                      'criterion.empty_weight'])
    assert len(out) + len(dropped) == len(official)
    model = _build(TINY)
    assert set(out) == set(model.state_dict())
    model.load_state_dict(out, strict=True)
    # values are carried unchanged (e.g. the class-token-free side pos_embed)
    assert torch.equal(out['decode_head.side_adapter.pos_embed'].float(),
                       official['side_adapter_network.vit_model.pos_embed'].float())
    assert torch.equal(out['decode_head.void_embed'], official['ov_classifier.bg_embed'])


@pytest.mark.parametrize('name', sorted(RELEASED))
def test_released_layout_at_tiny_width(official, name):
    spec = RELEASED[name]
    depths = {'clip_visual_extractor.resblocks': spec['start'],
              'clip_rec_head.resblocks': spec['clip_layers'] - spec['start'],
              'ov_classifier.transformer.resblocks': 12,
              'side_adapter_network.vit_model.blocks': 8}
    state = _renumber(official, depths)
    out = san_official.convert({'model': state})  # detectron2's checkpoint wrapper
    assert san_official.fusion_targets(state) == [0, 1, 2, 3]
    tiny = copy.deepcopy(TINY)
    tiny['clip_cfg']['vision_cfg']['layers'] = spec['clip_layers']
    tiny['clip_cfg']['text_cfg']['layers'] = 12
    tiny['start_block'] = spec['start']
    tiny['fusion_map'] = [[s, d] for s, d in zip(spec['sources'], range(4))]
    tiny['side_adapter']['num_layers'] = 8
    tiny['deep_supervision_idxs'] = [7, 8]
    model = _build(tiny)
    model.load_state_dict(out, strict=True)
    assert len(out) + len(san_official.DROPPED) - 2 == len(state)  # no pixel_mean/std


def test_format_is_recognised_by_its_keys(official):
    assert san_official.matches(official)
    assert san_official.matches({'model': official})
    assert detect_format(official) == 'san_official'
    ours = san_official.convert(official)
    assert not san_official.matches(ours)
    mmseg = san_mmseg.mmovss_to_mmseg(ours)
    assert not san_official.matches(mmseg)
    assert detect_format(mmseg) == 'san_mmseg'


def test_truncated_files_are_refused(official):
    keys = list(official)
    # a block that lost one tensor, in the middle of the file
    broken = dict(official)
    del broken['clip_visual_extractor.resblocks.1.mlp.c_fc.weight']
    with pytest.raises(ConversionError, match=r'missing key.*resblocks\.1\.mlp\.c_fc\.weight'):
        san_official.convert(broken)
    # the first half of the file (an interrupted download)
    half = {k: official[k] for k in keys[:len(keys) // 2]}
    with pytest.raises(ConversionError, match='Not a complete SAN'):
        san_official.convert(half)
    # a whole fusion layer gone: its index shifts ours, so it is missing
    broken = {k: v for k, v in official.items() if 'fusion_layers.layer_2.input_proj.1' not in k}
    with pytest.raises(ConversionError, match='layer_2.input_proj.1.weight'):
        san_official.convert(broken)


def test_foreign_and_unknown_keys_are_refused(official):
    foreign = {'sem_seg_head.predictor.transformer.conv1.weight': torch.zeros(1),
               'backbone.clip_model.visual.proj': torch.zeros(1)}
    assert not san_official.matches(foreign)
    with pytest.raises(ConversionError, match='Not an official SAN checkpoint.*san_mmseg'):
        san_official.convert(foreign)
    with pytest.raises(ConversionError, match='expected a checkpoint dict'):
        san_official.convert([torch.zeros(1)])
    extra = dict(official)
    extra['clip_rec_head.sos_token'] = torch.zeros(6, 1, 16)  # SOS_TOKEN_FORMAT != cls_token
    with pytest.raises(ConversionError, match=r"unknown key.*clip_rec_head\.sos_token"):
        san_official.convert(extra)
    extra = dict(official)
    extra['clip_rec_head.resblocks.0.attn.q_norm.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='q_norm'):
        san_official.convert(extra)


def test_tool_wrapper(official, tmp_path):
    tool = load_tool('model_converters/san_official_to_mmovss.py')
    src, dst = tmp_path / 'san_vit_b_16.pth', tmp_path / 'ours.pth'
    torch.save({'model': official, 'iteration': 59999}, src)
    tool.main([str(src), str(dst)])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    from mmovss.converters.files import CONVERTED_META_KEY
    assert saved['meta'][CONVERTED_META_KEY]['format'] == 'san_official'
    _build(TINY).load_state_dict(saved['state_dict'], strict=True)


def test_patch_remainder_crop_drops_partial_patches():
    from mmseg.registry import MODELS
    cfg = dict(type='SANCLIPViT', model_cfg=TINY['clip_cfg'], out_indices=(1, 2, 3),
               encoder_resolution=0.7)
    image = torch.rand(1, 3, 64, 96)  # 0.7x: 44 x 67, patch 8
    pad = MODELS.build(cfg)
    crop = MODELS.build(dict(cfg, patch_remainder='crop'))
    crop.load_state_dict(pad.state_dict())
    assert pad(image)[1].shape[-2:] == (6, 9)
    assert crop(image)[1].shape[-2:] == (5, 8)
    exact = torch.rand(1, 3, 80, 80)  # 56 x 56: whole patches, both agree
    assert torch.equal(pad(exact)[-1], crop(exact)[-1])
    with pytest.raises(ValueError, match='patch_remainder'):
        MODELS.build(dict(cfg, patch_remainder='floor'))


def test_released_file_is_recognised_converted_once_and_cached(official, tmp_path):
    from mmovss.apis.released_weights import prepare_weights
    src = tmp_path / 'san_vit_b_16.pth'
    torch.save({'model': official}, src)
    first = prepare_weights(str(src), cache_dir=str(tmp_path / 'cache'), verbose=False)
    assert (first.format, first.converted, first.fresh) == ('san_official', True, True)
    again = prepare_weights(str(src), cache_dir=str(tmp_path / 'cache'), verbose=False)
    assert (again.path, again.fresh) == (first.path, False)
    saved = torch.load(first.path, map_location='cpu', weights_only=True)
    _build(TINY).load_state_dict(saved['state_dict'], strict=True)


def test_pos_embed_resize_tokens_keeps_a_same_length_grid():
    from mmovss.models.decode_heads.san_head import SideAdapter
    grid = SideAdapter(16, embed_dims=8, num_queries=2, num_layers=1, num_heads=2,
                       pretrain_grid=4, num_bias_heads=2, fusion_index=(0, 1))
    tokens = SideAdapter(16, embed_dims=8, num_queries=2, num_layers=1, num_heads=2,
                         pretrain_grid=4, num_bias_heads=2, fusion_index=(0, 1),
                         pos_embed_resize='tokens')
    torch.nn.init.normal_(grid.pos_embed)
    tokens.load_state_dict(grid.state_dict())
    raster = torch.cat([tokens.query_pos_embed, tokens.pos_embed], dim=1)
    assert torch.equal(tokens.position_embedding((2, 8)), raster)  # 16 patches: as stored
    assert not torch.allclose(grid.position_embedding((2, 8)), raster)
    assert torch.equal(tokens.position_embedding((3, 8)), grid.position_embedding((3, 8)))
    with pytest.raises(ValueError, match='pos_embed_resize'):
        SideAdapter(16, num_layers=1, fusion_index=(0, 1), pos_embed_resize='bicubic')
