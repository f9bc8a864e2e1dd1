"""Every config under ``configs/`` loads and builds (issue #16).

A broken ``_base_``, a renamed argument or a removed transform fails here
instead of on a user's GPU. Models are built with tiny stand-ins for every
named weight source: open_clip towers keep their depth but get 64-wide
image and 32-wide text layers (``model_cfg`` instead of the model name),
timm ViTs (ProxyCLIP's DINO) get 64 channels, ConvNeXt trunks become
``convnext_atto``, SAM becomes the random small SAM of the benchmark tools
(:func:`mmovss.benchmarking.use_random_weights`), and nothing is read or
downloaded. The head widths that follow the image tower's width
(``decode_head.in_channels`` of CAT-Seg, LSeg and FC-CLIP) are narrowed with
it, as a config that swaps the tower must (the build checks them,
:mod:`mmovss.models.utils.width_check`). The rest of each model is built at its
configured size.
Models that differ only in numbers (thresholds, window sizes) or in the
class-name file are built once; every class-name file is loaded for every
config. Datasets are built lazily (no files read), with their pipelines;
metrics and custom hooks are built too.
"""
import copy
import functools
import glob
import json
import os.path as osp

import pytest

from mmovss.benchmarking.random_weights import pop_sam_markers, use_random_weights
from mmovss.vocab import Vocabulary

from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))
METHOD_CONFIGS = [p for p in CONFIGS if '_base_' not in p]
DATA_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _rel(path):
    return osp.relpath(path, REPO)


def _tiny_open_clip(name: str) -> dict:
    """The open_clip model config of ``name``, narrowed (same depth)."""
    import open_clip
    cfg = copy.deepcopy(open_clip.get_model_config(name))
    vision, text = cfg['vision_cfg'], cfg['text_cfg']
    if 'timm_model_name' in vision:
        vision.update(timm_model_name='convnext_atto', timm_model_pretrained=False)
    else:
        vision.update(width=64, head_width=32)
    text.update(width=32, heads=2)
    return cfg


@functools.lru_cache(maxsize=None)
def _timm_stage_widths(name: str) -> tuple:
    """Channels of the stages of timm model ``name`` (built on the meta device)."""
    import timm
    import torch
    with torch.device('meta'):
        return tuple(f['num_chs'] for f in timm.create_model(name).feature_info)


def _narrowed_widths(name: str) -> dict:
    """{width: its stand-in's} of the image tower of open_clip model ``name``
    (:func:`_tiny_open_clip`); the joint dimension is kept."""
    import open_clip
    vision = open_clip.get_model_config(name)['vision_cfg']
    if 'timm_model_name' in vision:
        return dict(zip(_timm_stage_widths(vision['timm_model_name']),
                        _timm_stage_widths('convnext_atto')))
    return {vision['width']: 64}


def narrow_head_widths(model: dict, original: dict) -> dict:
    """``decode_head.in_channels`` that follow the narrowed image tower, narrowed
    with it (the widths of the original backbone mapped to its stand-in's)."""
    import open_clip
    name = (original.get('backbone') or {}).get('model_name')
    head = model.get('decode_head') or {}
    if not isinstance(name, str) or open_clip.get_model_config(name) is None \
            or 'in_channels' not in head:
        return model
    widths = _narrowed_widths(name)
    value = head['in_channels']
    head['in_channels'] = [widths.get(c, c) for c in value] \
        if isinstance(value, (list, tuple)) else widths.get(value, value)
    return model


def tiny_stand_ins(node, parent_key=None):
    """Replaces named weights by tiny random stand-ins, in place."""
    import open_clip
    if isinstance(node, dict):
        name = node.get('model_name')
        if isinstance(name, str) and open_clip.get_model_config(name) is not None:
            node.pop('model_name')
            node['model_cfg'] = _tiny_open_clip(name)
            node['pretrained'] = None
        elif isinstance(name, str) and parent_key == 'vfm':  # a timm ViT
            node['model_kwargs'] = dict(embed_dim=64, num_heads=2)
        if node.get('cache_dir') is not None:
            node['cache_dir'] = None  # no text-embedding files written
        for key, value in node.items():
            tiny_stand_ins(value, key)
    elif isinstance(node, (list, tuple)):
        for value in node:
            tiny_stand_ins(value, parent_key)
    return node


def _architecture_key(node):
    """The model dict without numbers and class names: what the build checks."""
    if isinstance(node, dict):
        return {k: _architecture_key(v) for k, v in sorted(node.items()) if k != 'vocabulary'}
    if isinstance(node, (list, tuple)):
        return [_architecture_key(v) for v in node]
    return node if isinstance(node, str) else type(node).__name__


def _lazy(node):
    """Every dataset dict of a dataloader gets ``lazy_init=True``."""
    if isinstance(node, dict):
        if 'type' in node and ('pipeline' in node or 'datasets' in node):
            node['lazy_init'] = True
        for value in node.values():
            _lazy(value)
    elif isinstance(node, list):
        for value in node:
            _lazy(value)
    return node


def test_the_build_test_sees_every_config_folder():
    folders = {_rel(p).split(osp.sep)[1] for p in CONFIGS}
    assert {'_base_', 'san', 'sclip', 'catseg', 'ovshapes'} <= folders
    assert len(METHOD_CONFIGS) >= 40


@pytest.mark.parametrize('path', CONFIGS, ids=[_rel(p) for p in CONFIGS])
def test_config_loads(path):
    cfg = Config.fromfile(path)
    assert cfg.filename == path
    vocabulary = cfg.get('model', {}).get('vocabulary')
    if vocabulary is not None:
        assert Vocabulary.build(vocabulary).num_classes > 0


@pytest.fixture(scope='module')
def built_models():
    return {}


@pytest.mark.parametrize('path', METHOD_CONFIGS, ids=[_rel(p) for p in METHOD_CONFIGS])
def test_config_builds(path, built_models):
    from mmseg.registry import DATASETS, HOOKS, METRICS, MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(path)
    original = cfg.model.to_dict()
    model = tiny_stand_ins(use_random_weights(copy.deepcopy(original)))
    narrow_head_widths(model, original)
    pop_sam_markers(model)
    key = json.dumps(_architecture_key(model), sort_keys=True)
    if key not in built_models:
        built = MODELS.build(model)
        assert sum(p.numel() for p in built.parameters()) > 0
        built_models[key] = _rel(path)
    for name in DATA_KEYS:
        loader = cfg.get(name)
        if loader is not None:
            dataset = DATASETS.build(_lazy(copy.deepcopy(loader['dataset'].to_dict())))
            assert type(dataset).__name__ == loader['dataset']['type']
    for name in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(name)
        if evaluator is not None:
            for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
                METRICS.build(copy.deepcopy(metric))
    for hook in cfg.get('custom_hooks') or []:
        HOOKS.build(copy.deepcopy(hook))


def test_tiny_stand_ins_replace_every_named_weight():
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/models/proxyclip_vit-b16-dino-b8.py'))
    model = tiny_stand_ins(use_random_weights(cfg.model.to_dict()))
    text = json.dumps(model)
    assert 'ViT-B-16' not in text and '"pretrained": "openai"' not in text
    assert model['backbone']['model_cfg']['vision_cfg']['width'] == 64
    assert model['backbone']['model_cfg']['vision_cfg']['layers'] == 12  # depth kept
    assert model['backbone']['vfm']['model_kwargs'] == dict(embed_dim=64, num_heads=2)
    assert model['text_encoder']['cache_dir'] is None


def test_head_widths_follow_the_narrowed_tower():
    """The tower widths in ``in_channels`` become the stand-in's; the joint
    dimension (CAT-Seg's last entry) is kept, as the stand-in keeps it."""
    for rel, want in (('configs/_base_/models/catseg_vit-l14.py', [64, 64, 768]),
                      ('configs/_base_/models/fcclip_convnext-b.py', [40, 80, 160, 320])):
        original = Config.fromfile(osp.join(REPO, rel)).model.to_dict()
        model = narrow_head_widths(tiny_stand_ins(copy.deepcopy(original)), original)
        assert model['decode_head']['in_channels'] == want
