"""Released OVSeg models: the checkpoint converter (official key layout at tiny shapes,
from the committed parity fixture), the backbones against stored official layer outputs
(DeepLab ResNet, Swin), the official options of the region classifier, and the per-benchmark
ensemble weight of the official configs.

Fixtures: ``tests/data/official_parity/ovseg/seed0`` (the whole official model) and
``swin_seed0`` (the official Swin alone), written by ``tools/parity/ovseg_reference.py``
(README there). Tolerance: 1e-4 absolute, as every official-parity stage.
"""
import copy
import os.path as osp
import re

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.converters import ovseg_official as oc
from mmovss.converters.common import ConversionError
from mmovss.converters.formats import detect_format
from mmovss.testing.official_parity import load_fixture
from mmovss.testing.official_parity.ovseg import (
    dense_state,
    run_fixture,
    tiny_backbone_cfg,
    tiny_model_cfg,
)

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

ROOT = osp.join(osp.dirname(__file__), 'data', 'official_parity', 'ovseg')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ATOL = 1e-4


@pytest.fixture(scope='module')
def fixture():
    return load_fixture(osp.join(ROOT, 'seed0'))


@pytest.fixture(scope='module')
def official(fixture):
    return dense_state(fixture.state_dict)


@pytest.fixture(scope='module')
def model(fixture, official):
    init_default_scope('mmseg')
    built = MODELS.build(tiny_model_cfg(fixture.meta)).eval()
    built.load_state_dict(oc.convert(official), strict=True)
    return built


# ------------------------------------------------------------- converter
def test_every_official_key_is_mapped_or_dropped_and_loads_strictly(official, model):
    out = oc.convert({'model': official, 'iteration': 1})  # detectron2's file layout
    assert set(out) == set(model.state_dict())
    dropped = [k for k in official if oc.convert_key(k) is None and
               not k.startswith('backbone.')]
    assert sorted(dropped) == sorted(k for k in official if any(
        re.match(p, k) for p in oc.DROPPED))
    assert dropped  # criterion.empty_weight, pixel_mean/std, logit_scale
    # values are moved, not changed (the Swin merge reorder is tested below)
    torch.testing.assert_close(out['decode_head.void_embed'],
                               official['clip_adapter.non_object_embedding'])
    torch.testing.assert_close(
        out['decode_head.region_classifier.mask_prompts'],
        official['clip_adapter.clip_model.visual.mask_embedding'])
    # format version 1 (pixel decoder directly under sem_seg_head.) converts the same
    legacy = {k.replace('sem_seg_head.pixel_decoder.', 'sem_seg_head.'): v
              for k, v in official.items()}
    assert oc.convert(legacy).keys() == out.keys()
    assert oc.matches(official) and detect_format(official) == 'ovseg_official'
    assert oc.official_backbone(official) == 'r101c'


def test_truncated_foreign_and_unknown_keys_are_refused(official):
    truncated = dict(official)
    truncated.pop('sem_seg_head.predictor.transformer.decoder.layers.1.linear2.bias')
    with pytest.raises(ConversionError, match='missing key.*layers.1.linear2.bias'):
        oc.convert(truncated)
    no_block = {k: v for k, v in official.items() if not k.startswith('backbone.res4.5.')}
    with pytest.raises(ConversionError, match=r'missing key.*blocks \(3, 4, 5, 3\)'):
        oc.convert(no_block)
    extra = dict(official, **{'sem_seg_head.predictor.extra_layer.weight': torch.zeros(1)})
    with pytest.raises(ConversionError, match='unknown key.*extra_layer'):
        oc.convert(extra)
    foreign = {k.replace('clip_adapter.', 'clip.'): v for k, v in official.items()}
    assert not oc.matches(foreign)
    with pytest.raises(ConversionError, match='Not an OVSeg checkpoint'):
        oc.convert(foreign)
    with pytest.raises(ConversionError, match='expected a checkpoint dict'):
        oc.convert([1, 2])


def test_deeplab_resnet101_keys_convert_to_resnetv1c():
    """The released R101c layout (blocks 3-4-23-3, DeepLab stem, shortcuts in the first
    block of every stage) at tiny widths: every key has a place in ResNetV1c-101."""
    init_default_scope('mmseg')
    ours = MODELS.build(dict(type='ResNetV1c', depth=101, stem_channels=8, base_channels=1,
                             multi_grid=(1, 2, 4), norm_cfg=dict(type='BN')))
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    official = {}
    for j, c in enumerate((1, 2, 3)):
        official[f'stem.conv{c}.weight'] = shapes[f'stem.{3 * j}.weight']
        for n in ('weight', 'bias', 'running_mean', 'running_var'):
            official[f'stem.conv{c}.norm.{n}'] = shapes[f'stem.{3 * j + 1}.{n}']
    for stage, blocks in zip((2, 3, 4, 5), (3, 4, 23, 3)):
        for i in range(blocks):
            convs = ['conv1', 'conv2', 'conv3'] + (['shortcut'] if i == 0 else [])
            for conv in convs:
                ours_conv = 'downsample.0' if conv == 'shortcut' else conv
                ours_norm = 'downsample.1' if conv == 'shortcut' else f'bn{conv[-1]}'
                base = f'layer{stage - 1}.{i}.'
                official[f'res{stage}.{i}.{conv}.weight'] = shapes[base + ours_conv + '.weight']
                for n in ('weight', 'bias', 'running_mean', 'running_var'):
                    official[f'res{stage}.{i}.{conv}.norm.{n}'] = shapes[f'{base}{ours_norm}.{n}']
    state = {f'backbone.{k}': torch.zeros(s) for k, s in official.items()}
    out = oc.convert_deeplab_resnet(state, 'backbone.')
    assert {k: v.shape for k, v in out.items()} == shapes
    ours.load_state_dict(out, strict=True)


@pytest.mark.parametrize('backbone,config', [
    ('r101c', 'ovseg-official_r101c-vit-b16_120k_coco-stuff171-512x512.py'),
    ('swin', 'ovseg-official_swin-b-vit-l14_120k_coco-stuff171-640x640.py')])
def test_released_key_layout_converts_to_the_official_configs(backbone, config):
    """The key names and shapes of the released models at full size (the official model
    built from its released config on the meta device; tests/data/ovseg_official_keys) convert
    to exactly the keys and shapes of our official config."""
    import gzip
    import json

    import open_clip
    with gzip.open(osp.join(osp.dirname(__file__), 'data', 'ovseg_official_keys',
                            f'{backbone}.json.gz'), 'rt') as f:
        layout = json.load(f)['keys']
    state = {k: torch.empty(s, device='meta') for k, s in layout.items()}
    out = {k: tuple(v.shape) for k, v in oc.convert(state).items()}
    init_default_scope('mmseg')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ovseg', config)).model
    expect = {}
    with torch.device('meta'):
        head = MODELS.build(cfg.decode_head)
        clip = open_clip.CLIP(**open_clip.get_model_config(cfg.text_encoder.model_name))
        built = MODELS.build(cfg.backbone) if backbone == 'r101c' else None
    if built is None:  # mmseg's Swin reads its drop-path rates with .item()
        built = MODELS.build(cfg.backbone)
    expect.update({f'backbone.{k}': tuple(v.shape) for k, v in built.state_dict().items()})
    expect.update({f'decode_head.{k}': tuple(v.shape) for k, v in head.state_dict().items()})
    text = ('transformer.', 'token_embedding.', 'positional_embedding', 'ln_final.',
            'text_projection')
    expect.update({f'text_encoder.tower.{k}': tuple(v.shape)
                   for k, v in clip.state_dict().items() if k.startswith(text)})
    assert out == expect


# ------------------------------------------------------------- backbones
def test_deeplab_resnet_matches_the_official_layer_outputs(fixture, official):
    """ResNetV1c (stem_channels = STEM_OUT_CHANNELS, multi_grid = RES5_MULTI_GRID) with the
    converted weights gives detectron2's DeepLab ResNet res2-res5 (stored)."""
    init_default_scope('mmseg')
    backbone = MODELS.build(tiny_backbone_cfg(fixture.meta))
    backbone.eval()
    backbone.load_state_dict(oc.convert_deeplab_resnet(official, 'backbone.'), strict=True)
    img = torch.from_numpy(fixture.inputs['image']).float()
    mean = torch.tensor(fixture.meta['pixel_mean']).view(3, 1, 1)
    std = torch.tensor(fixture.meta['pixel_std']).view(3, 1, 1)
    with torch.no_grad():
        feats = backbone(((img - mean) / std)[None])
    for i, feat in enumerate(feats):
        expect = torch.from_numpy(fixture.stages[f'backbone/res{i + 2}'])
        torch.testing.assert_close(feat[0], expect, atol=ATOL, rtol=0)
    # without RES5_MULTI_GRID (all dilations 1) res5 differs
    cfg = dict(tiny_backbone_cfg(fixture.meta), multi_grid=None)
    plain = MODELS.build(cfg)
    plain.eval()
    plain.load_state_dict(oc.convert_deeplab_resnet(official, 'backbone.'), strict=True)
    with torch.no_grad():
        res5 = plain(((img - mean) / std)[None])[3][0]
    assert (res5 - torch.from_numpy(fixture.stages['backbone/res5'])).abs().max() > 1e-2


def test_swin_matches_the_official_layer_outputs():
    swin = load_fixture(osp.join(ROOT, 'swin_seed0'))
    report = run_fixture(swin)
    assert set(report.diffs) == {f'backbone/res{i}' for i in (2, 3, 4, 5)}
    assert not report.failures(), report.failures()
    # the patch-merging reorder matters: without it res3 (after the first merge) differs
    state = dense_state(swin.state_dict)
    init_default_scope('mmseg')
    backbone = MODELS.build(tiny_backbone_cfg(swin.meta))
    backbone.eval()
    raw = {}
    for key, value in state.items():
        new = oc.d2_swin_key(key[len('backbone.'):])
        raw[new] = value
    for key, value in backbone.state_dict().items():
        raw.setdefault(key, value)  # relative_position_index: not stored
    backbone.load_state_dict(raw, strict=True)
    img = torch.from_numpy(swin.inputs['image']).float()
    mean = torch.tensor(swin.meta['pixel_mean']).view(3, 1, 1)
    std = torch.tensor(swin.meta['pixel_std']).view(3, 1, 1)
    with torch.no_grad():
        feats = backbone(((img - mean) / std)[None])
    torch.testing.assert_close(feats[0][0], torch.from_numpy(swin.stages['backbone/res2']),
                               atol=ATOL, rtol=0)
    assert (feats[1][0] - torch.from_numpy(swin.stages['backbone/res3'])).abs().max() > 1e-3


# ------------------------------------------------------ official options
@pytest.mark.parametrize('option,value', [('crop_resize', 'roi_align'),
                                          ('mask_prompt_at_embed', False),
                                          ('logit_scale', None)])
def test_each_official_region_option_is_needed(fixture, model, option, value):
    """With the released options the CLIP logits of the crops match the official ones
    (tests/test_official_parity.py); switching any one back to our default does not."""
    classifier = model.decode_head.region_classifier
    img = torch.from_numpy(fixture.inputs['image']).float()[None]
    head = model.decode_head
    mean = torch.tensor(fixture.meta['pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(fixture.meta['pixel_std']).view(1, 3, 1, 1)
    expect = torch.from_numpy(fixture.stages['clip/logits'])
    with torch.no_grad():
        feats = model.backbone((img - mean) / std)
        embeds = model.class_embeddings()
        masks, _ = head.forward_sets(tuple(feats) + (img, ), embeds)
        up = torch.nn.functional.interpolate(masks[-1], size=img.shape[-2:], mode='bilinear',
                                             align_corners=False)
        logits, valid = classifier(img, up, embeds)
        torch.testing.assert_close(logits[0, valid[0]], expect, atol=ATOL, rtol=0)
        saved = getattr(classifier, option)
        setattr(classifier, option, value)
        try:
            changed, _ = classifier(img, up, embeds)
        finally:
            setattr(classifier, option, saved)
    assert (changed[0, valid[0]] - expect).abs().max() > 1e-3


def test_released_configs_set_the_per_benchmark_ensemble_weight():
    from mmovss.protocols import apply_benchmark
    expect = {'ade20k_150': 0.7, 'ade20k_847': 0.7, 'pascal_context_59': 0.6,
              'pascal_context_459': 0.6, 'voc20': 0.45}
    for name in ('ovseg-official_r101c-vit-b16_120k_coco-stuff171-512x512.py',
                 'ovseg-official_swin-b-vit-l14_120k_coco-stuff171-640x640.py'):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'ovseg', name))
        assert cfg.model.decode_head.ensemble_weight == 0.7  # CLIP_ENSEMBLE_WEIGHT
        short_side = 512 if 'r101c' in name else 640  # MIN_SIZE_TEST of each config
        for key, weight in expect.items():
            switched = apply_benchmark(copy.deepcopy(cfg), key)
            assert switched.model.decode_head.ensemble_weight == weight, (name, key)
            resize = switched.test_dataloader.dataset.pipeline[1]
            assert resize['type'] == 'Resize' and min(resize['scale']) == short_side


def test_clip_only_at_zero_weight_is_the_official_gating(fixture, model):
    """Official ``semantic_inference`` with weight 0: softmax of CLIP's logits (the
    non-object column dropped) for the classified proposals, the others removed."""
    head = model.decode_head
    img = torch.from_numpy(fixture.inputs['image']).float()[None]
    mean = torch.tensor(fixture.meta['pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(fixture.meta['pixel_std']).view(1, 3, 1, 1)
    valid = torch.from_numpy(fixture.stages['clip/valid'])
    expect = torch.from_numpy(fixture.stages['clip/logits']).softmax(dim=-1)
    saved = head.ensemble_weight, head.clip_only_at_zero
    try:
        with torch.no_grad():
            feats = model.backbone((img - mean) / std)
            embeds = model.class_embeddings()
            inputs = tuple(feats) + (img, )
            masks, logits = head.forward_sets(inputs, embeds)
            up = torch.nn.functional.interpolate(masks[-1], size=img.shape[-2:],
                                                 mode='bilinear', align_corners=False)
            head.ensemble_weight, head.clip_only_at_zero = 0.0, True
            clip_only = head.class_probs(inputs, up, logits[-1], embeds)[0]
            head.clip_only_at_zero = False
            mask_only = head.class_probs(inputs, up, logits[-1], embeds)[0]
    finally:
        head.ensemble_weight, head.clip_only_at_zero = saved
    torch.testing.assert_close(clip_only[valid], expect, atol=ATOL, rtol=0)
    assert bool((clip_only[~valid] == 0).all())
    torch.testing.assert_close(mask_only, logits[-1][0].softmax(-1)[:, :-1])


def test_converter_tool_writes_a_checkpoint_that_loads(tmp_path, fixture, official, model):
    from mmovss.testing.tools import load_tool
    tool = load_tool('model_converters/ovseg_official_to_mmovss.py')
    src, dst = tmp_path / 'ovseg_official.pth', tmp_path / 'ours.pth'
    torch.save({'model': official}, src)
    tool.main([str(src), str(dst)])
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    from mmovss.converters.files import CONVERTED_META_KEY
    assert saved['meta'][CONVERTED_META_KEY]['format'] == 'ovseg_official'
    assert saved['meta']['backbone'] == 'r101c'
    model.load_state_dict(saved['state_dict'], strict=True)
