"""LSeg's released architecture (issue #19): the official checkpoint layout, the
DPT readout modes, the timm ViT backbone and the fp16 text path.

The official key layout comes from the committed parity fixture
(``tests/data/official_parity/lseg/seed0``: a tiny ``LSegNet`` built by the
official code, ``tools/parity/lseg_reference.py``).
"""
import copy
import math

import numpy as np
import pytest
import torch

from mmovss.converters import lseg_official
from mmovss.converters.common import ConversionError
from mmovss.testing.official_parity import list_fixtures, load_fixture
from mmovss.testing.official_parity.lseg import official_state_dict, tiny_model_cfg

from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

init_default_scope('mmseg')


@pytest.fixture(scope='module')
def fixture():
    paths = list_fixtures('lseg')
    assert paths, 'the LSeg official-parity fixture is missing'
    return load_fixture(paths[0])


@pytest.fixture(scope='module')
def official(fixture):
    """The official state dict as a PyTorch-Lightning checkpoint holds it."""
    return {'epoch': 199, 'global_step': 1, 'pytorch-lightning_version': '1.3.5',
            'state_dict': official_state_dict(fixture)}


@pytest.fixture(scope='module')
def model(fixture):
    return MODELS.build(tiny_model_cfg(fixture.meta)).eval()


def test_every_official_key_is_mapped_or_dropped_with_a_reason(official, model):
    state = official['state_dict']
    assert all(k.startswith('net.') for k in state)
    assert lseg_official.matches(state)
    assert lseg_official.official_readout(state) == 'project'
    converted = lseg_official.convert(official)  # the Lightning dict, unwrapped
    ours = model.state_dict()
    assert set(converted) == set(ours)
    for key, value in converted.items():
        assert value.shape == ours[key].shape, key
    dropped = {k for k in state
               if any(__import__('re').match(p, k[4:]) for p, _ in lseg_official.DROPPED)}
    # every drop rule that concerns the network is exercised by the real layout
    for pattern in (r'clip_pretrained.visual.', 'clip_pretrained.logit_scale',
                    'pretrained.model.norm.', 'pretrained.model.head.',
                    'scratch.refinenet4.resConfUnit1.'):
        assert any(k[4:].startswith(pattern) for k in dropped), pattern
    # mapped + dropped = all; the fixed temperature is the one added key
    assert len(converted) == len(state) - len(dropped) + 1
    assert math.isclose(float(converted['decode_head.log_logit_scale'].exp()), 1 / 0.07,
                        rel_tol=1e-6)
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected


def test_a_bare_lsegnet_state_dict_converts_too(official):
    bare = {k[4:]: v for k, v in official['state_dict'].items()}
    assert lseg_official.official_prefix(bare) == ''
    assert set(lseg_official.convert(bare)) == set(lseg_official.convert(official))


def test_foreign_and_truncated_checkpoints_are_refused(official):
    state = official['state_dict']
    foreign = {'backbone.visual.conv1.weight': torch.zeros(1),
               'decode_head.side_adapter.x': torch.zeros(1)}
    assert not lseg_official.matches(foreign)
    with pytest.raises(ConversionError, match='Not an LSeg'):
        lseg_official.convert(foreign)
    # a truncated download: the last ViT block and a fusion BN are gone
    truncated = {k: v for k, v in state.items()
                 if not k.startswith('net.pretrained.model.blocks.23.norm2')
                 and 'refinenet1.resConfUnit2.bn2.running_var' not in k}
    with pytest.raises(ConversionError, match=r'3 missing key\(s\)'):
        lseg_official.convert(truncated)
    # no readout projection for one level only
    partial = {k: v for k, v in state.items() if 'act_postprocess2.0.project' not in k}
    with pytest.raises(ConversionError, match='missing'):
        lseg_official.convert(partial)
    extra = dict(state, **{'net.scratch.auxlayer.weight': torch.zeros(1)})
    with pytest.raises(ConversionError, match=r'unknown key\(s\).*auxlayer'):
        lseg_official.convert(extra)


class ModelCheckpoint:
    """Stands for PyTorch-Lightning's callback class, which 1.x uses as a dict key."""

    def __init__(self):
        self.ran = True


def test_the_converter_tool_writes_a_loadable_checkpoint(official, model, tmp_path):
    import argparse

    from mmovss.runtime import load_checkpoint_safely
    from mmovss.testing.tools import load_tool

    # by path: another test may have imported a different top-level ``tools``
    main = load_tool('model_converters/lseg_official_to_mmovss.py').main
    src, dst = tmp_path / 'demo.ckpt', tmp_path / 'ours.pth'
    # as Lightning 1.3 saves it: callback state keyed by the callback class
    lightning = dict(official, callbacks={ModelCheckpoint: {'best_model_score': torch.ones(())}},
                     hparams=argparse.Namespace(backbone='clip_vitl16_384'))
    torch.save(lightning, src)
    with pytest.raises(ValueError, match='weights-only'):
        load_checkpoint_safely(str(src))  # the generic loader refuses the globals
    loaded = lseg_official.load_lightning_checkpoint(str(src))
    (key, _), = loaded['callbacks'].items()
    assert key is not ModelCheckpoint and not hasattr(key(), 'ran')  # inert stand-in
    main([str(src), str(dst)])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert saved['meta']['readout_type'] == 'project'
    probe = copy.deepcopy(model)
    probe.load_state_dict(saved['state_dict'], strict=True)


def _tiny_head(readout, **kw):
    return MODELS.build(dict(
        type='LSegHead', in_channels=8, embed_dim=16, channels=8,
        post_process_channels=(4, 8, 16, 16), patch_size=16, readout_type=readout,
        reg_block=None, **kw))


def _tiny_vit(**kw):
    cfg = dict(type='TimmViT', model_name='vit_large_patch16_384', out_indices=(0, 1, 2, 3),
               model_kwargs=dict(embed_dim=8, depth=4, num_heads=2, img_size=32))
    return MODELS.build(dict(cfg, **kw))


def test_readout_modes_use_the_class_token_as_dpt_defines_them():
    torch.manual_seed(0)
    feats = _tiny_vit().eval()(torch.randn(1, 3, 32, 48))
    heads = {r: _tiny_head(r).eval() for r in ('ignore', 'add', 'project')}
    state = heads['ignore'].state_dict()
    heads['add'].load_state_dict(state)
    with torch.no_grad():
        add = heads['add'].pixel_embeddings(feats)
        # 'add' = 'ignore' on patch tokens plus the class token
        shifted = [[m + c[:, :, None, None], None] for m, c in feats]
        ignore = heads['ignore'].pixel_embeddings([m for m, _ in shifted])
        torch.testing.assert_close(add, ignore, rtol=0, atol=1e-5)
        plain = heads['ignore'].pixel_embeddings(feats)  # pairs: the token is dropped
        torch.testing.assert_close(plain, heads['ignore'].pixel_embeddings(
            [m for m, _ in feats]), rtol=0, atol=0)
        assert not torch.allclose(add, plain)
        # 'project': one Linear(2C, C) + GELU per level reads [patch, cls]
        project = heads['project']
        assert len(project.reassemble.readout_projects) == 4
        before = project.pixel_embeddings(feats)
        project.reassemble.readout_projects[3][0].weight.data[:, 8:] += 1.0  # cls half
        assert not torch.allclose(before, project.pixel_embeddings(feats))
    assert not hasattr(heads['add'].reassemble, 'readout_projects')
    # maps without class tokens (the CLIP backbones) only work with 'ignore'
    with pytest.raises(ValueError, match="readout_type='add' needs the class token"):
        heads['add'].pixel_embeddings([m for m, _ in feats])
    with pytest.raises(ValueError, match='readout_type'):
        _tiny_head('concat')


def test_timm_vit_returns_block_tokens_with_a_resized_position_grid():
    torch.manual_seed(0)
    vit = _tiny_vit().eval()
    x = torch.randn(1, 3, 48, 80)  # a 3 x 5 grid from the stored 2 x 2 one
    with torch.no_grad():
        outs = vit(x)
        tokens = vit.model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        pos = vit.model.pos_embed
        grid = torch.nn.functional.interpolate(
            pos[:, 1:].reshape(1, 2, 2, 8).permute(0, 3, 1, 2), size=(3, 5), mode='bilinear')
        pos = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], 1)
        t = torch.cat([vit.model.cls_token, tokens], 1) + pos
        t = vit.model.blocks[0](t)
    fmap, cls = outs[0]
    assert fmap.shape == (1, 8, 3, 5) and cls.shape == (1, 8)
    torch.testing.assert_close(cls, t[:, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(fmap.flatten(2).transpose(1, 2), t[:, 1:], rtol=0, atol=1e-6)
    assert isinstance(_tiny_vit(output_cls_token=False).eval()(x)[0], torch.Tensor)
    assert not any(k.startswith(('model.norm.', 'model.head.')) for k in vit.state_dict())
    with pytest.raises(ValueError, match='out_indices'):
        _tiny_vit(out_indices=(0, 9))
    # skip_init: the same parameters, allocated only (a checkpoint fills them)
    empty = _tiny_vit(skip_init=True)
    assert {k: v.shape for k, v in empty.state_dict().items()} == \
        {k: v.shape for k, v in vit.state_dict().items()}
    with pytest.raises(ValueError, match='skip_init'):
        _tiny_vit(skip_init=True, pretrained=True)


def test_half_precision_logits_follow_the_float_ones(fixture, model):
    from mmovss.models.text_encoders import ClassEmbeddings  # noqa: F401
    torch.manual_seed(0)
    head = model.decode_head
    assert head.logits_dtype == 'float16' and not head.log_logit_scale.requires_grad
    pixels = torch.randn(2, 512, 4, 6)
    text = torch.nn.functional.normalize(torch.randn(5, 512), dim=-1).half().float()
    half = head.official_half_logits(pixels, text)
    full = head._float_logits(pixels, text)
    assert half.dtype == torch.float32 and half.shape == full.shape == (2, 5, 4, 6)
    # fp16 rounding of values up to 1/0.07: a few thousandths
    assert (half - full).abs().max() < 2e-2
    assert not torch.equal(half, full)


def test_fp16_text_encoder_is_openai_clip_on_a_gpu(fixture, model):
    text = model.text_encoder
    assert text.precision == 'fp16' and not text.truncate
    tower = text.tower
    assert tower.transformer.resblocks[0].attn.in_proj_weight.dtype == torch.float16
    assert tower.text_projection.dtype == torch.float16
    assert tower.ln_final.weight.dtype == torch.float32  # LayerNorms stay float32
    fp32 = MODELS.build(dict(tiny_model_cfg(fixture.meta)['text_encoder'], precision='fp32'))
    fp32.load_state_dict({k: v.float() for k, v in text.state_dict().items()})
    names = fixture.meta['labels']
    with torch.no_grad():
        e16 = text(names).embeds
        e32 = fp32(names).embeds
    assert e16.dtype == torch.float32
    torch.testing.assert_close(e16.half().float(), e16, rtol=0, atol=0)  # fp16 values
    assert (e16 - e32).abs().max() < 5e-3
    assert text.cache_key()['dtype'] != fp32.cache_key()['dtype']
    with pytest.raises(ValueError, match='precision'):
        MODELS.build(dict(tiny_model_cfg(fixture.meta)['text_encoder'], precision='bf8'))


def test_the_official_config_is_the_released_architecture(repo_root):
    from mmovss.vocab import Vocabulary

    from mmengine.config import Config
    cfg = Config.fromfile(
        repo_root / 'configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py')
    head, backbone = cfg.model.decode_head, cfg.model.backbone
    assert backbone.type == 'TimmViT' and backbone.model_name == 'vit_large_patch16_384'
    assert tuple(backbone.out_indices) == (5, 11, 17, 23)
    assert (head.readout_type, head.learn_logit_scale, head.logits_dtype, head.reg_block) == \
        ('project', False, 'float16', None)
    assert cfg.model.text_encoder.quick_gelu and cfg.model.text_encoder.templates == ['{}']
    assert cfg.model.data_preprocessor.mean == cfg.model.data_preprocessor.std == [127.5] * 3
    vocab = Vocabulary.build(cfg.model.vocabulary)
    assert vocab.num_classes == 150 and list(vocab.names[:3]) == ['wall', 'building', 'sky']
    assert np.all([',' not in n for n in vocab.names])  # one label per class, no synonyms


def test_the_official_model_runs_through_sliding_window_inference(fixture):
    """Backbone outputs are [map, cls_token] pairs: the segmentor's windows and the
    head's per-crop decoding (predict_low_res) take them as they take maps."""
    from mmovss.testing.official_parity.lseg import build_model
    model = build_model(fixture)
    model.test_cfg.update(mode='slide', crop_size=(32, 64), stride=(16, 32))
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 48, 96))
    assert out[0].seg_logits.data.shape == (5, 48, 96)
    assert torch.isfinite(out[0].seg_logits.data).all()
