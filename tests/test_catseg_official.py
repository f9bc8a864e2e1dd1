"""CAT-Seg's released format and evaluation: the converter, its tool, the options.

The official-layout state dict is the committed parity fixture's
(``tests/data/official_parity/catseg/seed0``, written by the released code,
``tools/parity/catseg_reference.py``) completed with the keys the fixture
leaves out (the regenerated token embedding, the shifted-window mask
buffers, CLIP's ``logit_scale``), wrapped as detectron2 saves it.
Parity of the outputs is tests/test_official_parity.py.
"""
import copy
import os.path as osp
import sys

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.converters import catseg_official
from mmovss.converters.common import ConversionError
from mmovss.converters.formats import FORMAT_MODULES
from mmovss.models.segmentors.catseg_encoder_decoder import unfold_starts
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.testing.official_parity import default_fixture_root, load_fixture
from mmovss.testing.official_parity.catseg import regenerate, tiny_model_cfg

from mmseg.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURE = osp.join(default_fixture_root(), 'catseg', 'seed0')
AGG = catseg_official.AGG
CLIP = catseg_official.CLIP


@pytest.fixture(scope='module')
def official():
    """(released-layout checkpoint, fixture meta)."""
    fixture = load_fixture(FIXTURE)
    state = {k: v.float() for k, v in fixture.state_dict.items()}
    for key, spec in fixture.meta['regenerated'].items():
        state[key] = regenerate(spec)
    for i in range(fixture.meta['head']['num_layers']):  # buffers of the released file
        state[f'{AGG}layers.{i}.swin_block.block_2.attn_mask'] = torch.zeros(4, 144, 144)
    state[CLIP + 'logit_scale'] = torch.tensor(4.6052)
    return dict(model=state, iteration=79999), fixture.meta


def test_format_is_registered():
    assert catseg_official.FORMAT == 'catseg_official'
    assert FORMAT_MODULES[catseg_official.FORMAT] == catseg_official.__name__


def test_every_official_key_is_accounted_and_loads_strictly(official):
    checkpoint, meta = official
    state = checkpoint['model']
    assert catseg_official.matches(checkpoint) and catseg_official.matches(state)
    converted = catseg_official.convert(checkpoint)
    model = MODELS.build(tiny_model_cfg(meta))
    result = model.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    # every official key went somewhere or was dropped with a stated reason
    merged = {k for k in state if k.endswith(('q_proj_weight', 'k_proj_weight', 'v_proj_weight'))}
    dropped = {k for k in state if catseg_official._dropped(k)}
    mapped = {k for k in state if catseg_official.convert_key(k) is not None}
    assert merged | dropped | mapped == set(state)
    assert len(dropped) == meta['head']['num_layers'] + 1
    block = 'visual.transformer.resblocks.2.attn.'
    assert torch.equal(
        converted['backbone.' + block + 'in_proj_weight'],
        torch.cat([state[CLIP + block + f'{p}_proj_weight'] for p in 'qkv']))
    pad = converted['decode_head.class_layers.1.padding_token']
    assert torch.equal(pad, state[f'{AGG}layers.1.attention.padding_tokens'].reshape(-1))
    assert torch.equal(converted['decode_head.guidance_up.1.weight'], state['upsample2.weight'])


def test_foreign_checkpoint_is_refused(official):
    ours = {'backbone.visual.conv1.weight': torch.zeros(1),
            'decode_head.to_logit.bias': torch.zeros(1)}
    assert not catseg_official.matches(ours)
    with pytest.raises(ConversionError, match='Not a CAT-Seg \\(official\\) checkpoint'):
        catseg_official.convert(ours)
    with pytest.raises(ConversionError, match='expected a checkpoint dict'):
        catseg_official.convert([1, 2])


@pytest.mark.parametrize('drop', [
    CLIP + 'visual.transformer.resblocks.4.attn.v_proj_weight',
    AGG + 'decoder2.conv.double_conv.4.bias',
    CLIP + 'text_projection',
])
def test_incomplete_checkpoint_is_refused_naming_the_key(official, drop):
    state = dict(official[0]['model'])
    del state[drop]
    with pytest.raises(ConversionError, match='1 missing key') as err:
        catseg_official.convert(state)
    assert drop in str(err.value) and 'download' in str(err.value)


def test_unknown_key_is_refused(official):
    state = dict(official[0]['model'])
    state[AGG + 'layers.0.attention.extra.weight'] = torch.zeros(2)
    with pytest.raises(ConversionError, match='1 unknown key'):
        catseg_official.convert(state)
    state = dict(official[0]['model'])
    state[CLIP + 'visual.transformer.prompt_tokens'] = torch.zeros(2, 4, 16)  # VPT deep prompts
    with pytest.raises(ConversionError, match='PROMPT_DEPTH > 0'):
        catseg_official.convert(state)


def _tool():
    sys.path.insert(0, osp.join(REPO, 'tools', 'model_converters'))
    import catseg_official_to_mmovss
    return catseg_official_to_mmovss


def test_tool_converts_and_refuses_a_truncated_file(official, tmp_path):
    checkpoint, meta = official
    src, dst = tmp_path / 'model_base.pth', tmp_path / 'ours.pth'
    torch.save(checkpoint, src)
    _tool().main([str(src), str(dst)])
    saved = torch.load(dst, weights_only=True)
    MODELS.build(tiny_model_cfg(meta)).load_state_dict(saved['state_dict'], strict=True)
    data = src.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(SystemExit, match='truncated or corrupt'):
        _tool().main([str(cut), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()


def test_first_synonym_option_embeds_only_the_first_name():
    cfg = dict(type='CATSegTextEncoder', model_cfg=tiny_clip_cfg('vit'),
               templates=['A photo of a {} in the scene'])
    torch.manual_seed(0)
    first = MODELS.build(dict(cfg, synonyms='first'))
    every = MODELS.build(cfg)
    every.load_state_dict(first.state_dict())
    with torch.no_grad():
        got = first(['sky, clouds', 'cat'])
        alone = every(['sky', 'cat'])
        both = every(['sky, clouds', 'cat'])
    assert got.embeds.shape[0] == 2 and torch.allclose(got.embeds, alone.embeds)
    assert both.embeds.shape[0] == 3
    with pytest.raises(ValueError, match="synonyms='some'"):
        MODELS.build(dict(cfg, synonyms='some'))


def test_catseg_last_block_is_the_released_forward_dense():
    """``out_proj(v_proj(ln_1(x))) + x[:, :1]``, then ``+ mlp(ln_2(.))`` (model_vpt.py)."""
    import torch.nn.functional as F

    from mmovss.models.backbones.clip_vit import LAST_BLOCK_MODES
    from mmovss.testing.clip import build_tiny_clip
    block = build_tiny_clip().visual.transformer.resblocks[-1]
    attn, x = block.attn, torch.randn(2, 5, 64)
    c = attn.embed_dim
    with torch.no_grad():
        v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * c:], attn.in_proj_bias[2 * c:])
        out = attn.out_proj(v) + x[:, :1]
        expected = out + block.mlp(block.ln_2(out))
        ours = LAST_BLOCK_MODES['catseg'](block, x, (2, 2))
        maskclip = LAST_BLOCK_MODES['maskclip'](block, x, (2, 2))
    assert torch.allclose(ours, expected, atol=1e-5)
    assert torch.allclose(ours[:, 0], maskclip[:, 0], atol=1e-5)  # the class token agrees
    assert not torch.allclose(ours[:, 1:], maskclip[:, 1:], atol=1e-2)


def test_sliding_window_geometry_is_the_released_one():
    assert unfold_starts(640, 384, 256) == [0, 256]
    with pytest.raises(ValueError, match='do not cover'):
        unfold_starts(600, 384, 256)
    with pytest.raises(ValueError, match='smaller than the window'):
        unfold_starts(300, 384, 256)


def test_official_configs_are_the_released_protocol():
    from mmengine.config import Config
    for name in ('vit-b16', 'vit-l14'):
        cfg = Config.fromfile(osp.join(
            REPO, 'configs', 'catseg', f'catseg-official_{name}_80k_coco-stuff171-384x384.py'))
        model = copy.deepcopy(cfg.model)
        assert model.type == 'CATSegEncoderDecoder'
        assert model.test_cfg.mode == 'catseg_slide' and model.test_cfg.global_view
        assert model.backbone.last_block_mode == 'catseg'
        assert model.text_encoder.synonyms == 'first'
        assert model.backbone.pretrained is None and model.backbone.quick_gelu
        assert model.decode_head.test_pooling_size == (1, 1) and model.decode_head.pad_len == 256


def test_catseg_modes_without_samples_give_probabilities_and_labels(official):
    """``predict`` without samples (slide) and ``inference`` (whole) at the input size."""
    checkpoint, meta = official
    model = MODELS.build(tiny_model_cfg(meta, 'catseg_slide'))
    model.load_state_dict(catseg_official.convert(checkpoint), strict=True)
    model.eval().set_vocabulary(['cat', 'sky'])
    x = torch.randn(1, 3, 50, 60, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        result = model.predict(x)[0]
        model.test_cfg['mode'] = 'catseg_whole'
        probs = model.inference(x, model.batch_img_metas(x))
        labels = model.predict(x)[0].pred_sem_seg.data[0]
    slide = result.seg_logits.data
    assert slide.shape == (2, 50, 60) and 0 <= slide.min() and slide.max() <= 1
    assert torch.equal(result.pred_sem_seg.data[0], slide.argmax(0))
    assert probs.shape == (1, 2, 50, 60) and 0 <= probs.min() and probs.max() <= 1
    assert torch.equal(labels, probs[0].argmax(0))
