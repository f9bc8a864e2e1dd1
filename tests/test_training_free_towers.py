"""Bigger towers and the large-vocabulary benchmarks for the training-free family (issue #20).

* The ViT-L/14 and ViT-H/14 model bases are the ViT-B/16 bases with another open_clip tower (name,
  tag, joint dimension) and nothing else; each builds with random weights (no download) at the
  tower's depth, patch size and joint dimension (narrowed width) and segments one image.
* Every training-free family switched to ADE-847 and PASCAL Context-459 (``--benchmark``) builds
  and segments one image with the benchmark's full vocabulary on a tiny random CLIP.
"""
import copy
import glob
import os.path as osp

import open_clip
import pytest
import torch

from mmovss.benchmarking.random_weights import use_random_weights
from mmovss.protocols import apply_benchmark
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS_DIR = osp.join(REPO, 'configs', '_base_', 'models')
TOWERS = {'vit-l14': ('ViT-L-14', 'openai'), 'vit-h14': ('ViT-H-14', 'laion2b_s32b_b79k')}
METHODS = ('sclip', 'naclip', 'clearclip', 'maskclip', 'proxyclip')
init_default_scope('mmseg')


def _base(method, tower):
    suffix = '-dino-b8' if method == 'proxyclip' else ''
    return osp.join(MODELS_DIR, f'{method}_{tower}{suffix}.py'), \
        osp.join(MODELS_DIR, f'{method}_vit-b16{suffix}.py')


def _diff(a, b, prefix=''):
    keys = set(a) | set(b)
    out = set()
    for k in keys:
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out |= _diff(va, vb, f'{prefix}{k}.')
        elif va != vb:
            out.add(f'{prefix}{k}')
    return out


def test_every_big_tower_base_exists_with_a_runnable_voc21_file():
    found = {osp.basename(p) for p in glob.glob(osp.join(MODELS_DIR, '*_vit-[lh]14*.py'))}
    for method in METHODS:
        for tower in TOWERS:
            base = osp.basename(_base(method, tower)[0])
            assert base in found
            entry = Config.fromfile(osp.join(REPO, 'configs', method, f'{base[:-3]}_voc21.py'))
            b16 = Config.fromfile(osp.join(
                REPO, 'configs', method, f'{osp.basename(_base(method, tower)[1])[:-3]}_voc21.py'))
            # the B/16 VOC-21 file with the tower's three settings; the same evaluation
            assert entry.model.backbone.model_name == TOWERS[tower][0]
            for key in ('test_dataloader', 'test_evaluator', 'default_scope', 'test_cfg'):
                assert entry.get(key) == b16.get(key), key
            assert entry.model.decode_head.prob_thd == b16.model.decode_head.prob_thd


@pytest.mark.parametrize('tower', sorted(TOWERS))
@pytest.mark.parametrize('method', METHODS)
def test_big_tower_base_is_the_b16_base_with_another_tower(method, tower):
    path, b16_path = _base(method, tower)
    big, b16 = Config.fromfile(path), Config.fromfile(b16_path)
    name, tag = TOWERS[tower]
    assert big.protocol == b16.protocol
    assert tag in open_clip.list_pretrained_tags_by_model(name)
    assert big.model.backbone.model_name == big.model.text_encoder.model_name == name
    assert big.model.backbone.pretrained == big.model.text_encoder.pretrained == tag
    assert big.model.decode_head.in_channels == open_clip.get_model_config(name)['embed_dim']
    want = {'backbone.model_name', 'text_encoder.model_name', 'decode_head.in_channels'}
    if tag != b16.model.backbone.pretrained:
        want |= {'backbone.pretrained', 'text_encoder.pretrained'}
    assert _diff(big.model.to_dict(), b16.model.to_dict()) == want


def _narrow(name):
    """open_clip's config of ``name`` at width 64 (depth, patch, joint dim kept)."""
    cfg = copy.deepcopy(open_clip.get_model_config(name))
    cfg['vision_cfg'].update(width=64, head_width=32)
    cfg['text_cfg'].update(width=32, heads=2, layers=2)
    return cfg


def _vocabulary_run(model_cfg, vocabulary=None, metainfo=None, size=(30, 40), seed=0):
    """Builds the model and segments one image, with ``vocabulary`` or, as
    :class:`DatasetVocabularyHook` does, the classes of a dataset's ``metainfo``."""
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg['vocabulary'] = vocabulary
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg).eval()
    if metainfo is not None:
        model.set_dataset_vocabulary(metainfo)
    sample = SegDataSample(metainfo=dict(ori_shape=size, img_shape=(28, 42),
                                         pad_shape=(28, 42)))
    with torch.no_grad():
        pred = model.predict(torch.randn(1, 3, 28, 42), [sample])[0].pred_sem_seg.data
    return model, pred


@pytest.mark.parametrize('tower', sorted(TOWERS))
@pytest.mark.parametrize('method', METHODS)
def test_big_tower_builds_with_random_weights_and_runs(method, tower):
    name, _ = TOWERS[tower]
    cfg = Config.fromfile(_base(method, tower)[0]).model.to_dict()
    notes = []
    cfg = use_random_weights(cfg, notes)  # no tag, no download
    assert cfg['backbone']['pretrained'] is None and cfg['text_encoder']['pretrained'] is None
    for part in ('backbone', 'text_encoder'):
        cfg[part].pop('model_name')
        cfg[part]['model_cfg'] = _narrow(name)
    cfg['text_encoder'].update(cache_dir=None, templates='single')
    if 'vfm' in cfg['backbone']:
        cfg['backbone']['vfm']['model_kwargs'] = dict(embed_dim=64, num_heads=2)
    cfg['test_cfg'].update(crop_size=(28, 28), stride=(14, 14))
    model, pred = _vocabulary_run(cfg, ['sky', 'road', 'car'])
    full = open_clip.get_model_config(name)['vision_cfg']
    visual = model.backbone.clip.visual if hasattr(model.backbone, 'clip') else None
    if visual is not None:
        assert len(visual.transformer.resblocks) == full['layers']
        assert tuple(visual.patch_size) == (full['patch_size'],) * 2
    assert pred.shape == (1, 30, 40) and int(pred.max()) < 3


# ------------------------------------------------------------ ADE-847 / PC-459
FAMILY_CONFIGS = {
    'sclip': 'sclip/sclip_vit-b16_voc21.py',
    'naclip': 'naclip/naclip_vit-b16_voc21.py',
    'clearclip': 'clearclip/clearclip_vit-b16_voc21.py',
    'proxyclip': 'proxyclip/proxyclip_vit-b16-dino-b8_voc21.py',
    'resclip': 'resclip/resclip_vit-b16_pascal_context_60.py',
    'scclip': 'scclip/scclip_vit-b16_voc21.py',
}


@pytest.fixture(scope='module')
def tiny_12_layers():
    return tiny_clip_cfg(vision_cfg=dict(layers=12))  # the B/16 block indices exist


# ADE-847's METAINFO names two classes 'pot' (and 'bag', 'pedestal', ... : 9 display names
# twice, as published); Vocabulary.from_metainfo accepts them, so the dataset vocabulary builds.
@pytest.mark.parametrize('key,num_classes', [('ade20k_847', 847), ('pascal_context_459', 459)])
@pytest.mark.parametrize('family', sorted(FAMILY_CONFIGS))
def test_family_switched_to_a_large_vocabulary_runs_one_image(family, key, num_classes,
                                                             tiny_12_layers):
    _switched_run(family, key, num_classes, tiny_12_layers)


def _switched_run(family, key, num_classes, tiny):
    cfg = apply_benchmark(Config.fromfile(osp.join(REPO, 'configs', FAMILY_CONFIGS[family])), key)
    assert cfg.model.vocabulary is None  # follows the dataset (DatasetVocabularyHook)
    metainfo = dict(DATASETS.get(cfg.test_dataloader.dataset.type).METAINFO)
    assert len(metainfo['classes']) == num_classes
    model_cfg = use_random_weights(cfg.model.to_dict())
    for part in ('backbone', 'text_encoder'):
        model_cfg[part].update(model_name=None, model_cfg=tiny, pretrained=None)
    model_cfg['text_encoder'].update(cache_dir=None, templates='single')
    if 'vfm' in model_cfg['backbone']:
        model_cfg['backbone']['vfm']['model_kwargs'] = dict(embed_dim=64, num_heads=2)
    model_cfg['decode_head']['in_channels'] = tiny['embed_dim']
    model_cfg['test_cfg'].update(crop_size=(32, 32), stride=(16, 16))
    model, pred = _vocabulary_run(model_cfg, metainfo=metainfo)
    assert model.class_embeddings().num_classes == num_classes
    assert pred.shape == (1, 30, 40) and 0 <= int(pred.min()) and int(pred.max()) < num_classes
