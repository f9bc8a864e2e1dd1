"""Protocol 'fcclip': `--benchmark KEY` of the official FC-CLIP config gives the official
per-benchmark evaluation.

Expected values, read from github.com/bytedance/fc-clip @ 2b0bbe21
(configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_*.yaml, detectron2's
config defaults, fcclip/fcclip.py, fcclip/data/datasets/*_with_prompt_eng.txt):

* every eval yaml inherits fcclip_convnext_large_eval_ade20k.yaml, whose
  MASK_FORMER.TEST.PANOPTIC_ON is True; a847 / pc459 / pc59 / pas20 / pas21 set it False;
  PANOPTIC_ON makes ``sem_seg_postprocess_before_inference`` True (FCCLIP.from_config), i.e.
  the mask logits are resized to the original image before the sigmoid
  (mask_upsample='original'); otherwise the scores are (mask_upsample='logits');
* INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST: detectron2's defaults 800 / 1333, except the
  cityscapes yaml: 1024 / 2560 (train_net.py has no test mapper of its own: DatasetMapper's
  ResizeShortestEdge);
* class names: the *_with_prompt_eng.txt files, which equal mmovss/vocab/names/ except the
  background line of pascal_voc_21 (FC-CLIP's 72 background words).

When a clone of the official repository is at $MMOVSS_FCCLIP_REPO (default
/work/official/fc-clip), :func:`test_against_the_official_files` also reads these values from
the yaml and name files themselves.
"""
import os
import os.path as osp
import warnings

import pytest

from mmovss.protocols import BENCHMARK_KEYS, apply_benchmark, protocol_benchmarks, protocol_of
from mmovss.vocab import Vocabulary
from mmovss.vocab.benchmarks import load_benchmark_classes

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'fcclip',
                  'fcclip-official_convnext-l_368k_coco-panoptic-1024x1024.py')
FCCLIP_VOC21 = osp.join(ROOT, 'configs', '_base_', 'vocabularies', 'fcclip', 'voc21.txt')
OFFICIAL_REPO = os.environ.get('MMOVSS_FCCLIP_REPO', '/work/official/fc-clip')

# key: (eval yaml, MIN_SIZE_TEST, MAX_SIZE_TEST, PANOPTIC_ON, FC-CLIP names differ from ours)
OFFICIAL = {
    'ade20k_150': ('fcclip_convnext_large_eval_ade20k.yaml', 800, 1333, True, False),
    'ade20k_847': ('fcclip_convnext_large_eval_a847.yaml', 800, 1333, False, False),
    'pascal_context_459': ('fcclip_convnext_large_eval_pc459.yaml', 800, 1333, False, False),
    'pascal_context_59': ('fcclip_convnext_large_eval_pc59.yaml', 800, 1333, False, False),
    'voc20': ('fcclip_convnext_large_eval_pas20.yaml', 800, 1333, False, False),
    'voc21': ('fcclip_convnext_large_eval_pas21.yaml', 800, 1333, False, True),
    'cityscapes': ('fcclip_convnext_large_eval_cityscapes.yaml', 1024, 2560, True, False),
}
# keys FC-CLIP does not evaluate (mmovss's choice, said in each protocol base's header)
NOT_OFFICIAL = ('pascal_context_60', 'voc20b', 'coco_stuff171', 'coco_object', 'ovshapes')

_CFG = {}


def _config():
    if 'cfg' not in _CFG:
        _CFG['cfg'] = Config.fromfile(CONFIG)
    return _CFG['cfg']


def _resize(cfg):
    steps = [t for t in cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize']
    assert len(steps) <= 1
    return steps[0] if steps else None


def _vocabulary(cfg, key):
    vocab = cfg.model.get('vocabulary', None)
    hooks = [h['type'] for h in (cfg.get('custom_hooks') or [])]
    if vocab is None:
        assert 'DatasetVocabularyHook' in hooks
        return Vocabulary(load_benchmark_classes(key), duplicate_synonyms='ignore',
                          unique_names=False)
    assert 'DatasetVocabularyHook' not in hooks
    return Vocabulary.build(vocab)


def test_the_official_config_declares_the_family():
    assert protocol_of(_config()) == 'fcclip'
    assert set(protocol_benchmarks('fcclip')) == set(BENCHMARK_KEYS)
    assert set(OFFICIAL) | set(NOT_OFFICIAL) == set(BENCHMARK_KEYS)


@pytest.mark.parametrize('key', sorted(OFFICIAL))
def test_official_benchmarks(key):
    _, min_size, max_size, panoptic_on, own_names = OFFICIAL[key]
    cfg = apply_benchmark(_config(), key)
    resize = _resize(cfg)
    # ResizeShortestEdge(min, max) == mmcv Resize(scale=(max, min), keep_ratio=True)
    assert tuple(resize['scale']) == (max_size, min_size)
    assert resize['keep_ratio'] is True and resize.get('backend') == 'pillow'
    load = cfg.test_dataloader.dataset.pipeline[0]
    assert load['type'] == 'LoadImageFromFile' and load.get('imdecode_backend') == 'pillow'
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    head = cfg.model.decode_head
    assert head.mask_upsample == ('original' if panoptic_on else 'logits')
    # the model part of the official config stays (ensemble settings, padding to 32)
    assert head.ensemble_valid_mask is False and head.ov_pooling == 'features'
    assert cfg.model.data_preprocessor.test_cfg == dict(size_divisor=32)
    vocab = _vocabulary(cfg, key)
    ours = load_benchmark_classes(key)
    assert len(vocab) == len(ours)
    if own_names:
        assert cfg.model.vocabulary == FCCLIP_VOC21 or osp.samefile(cfg.model.vocabulary,
                                                                    FCCLIP_VOC21)
    else:
        assert cfg.model.get('vocabulary', None) is None


@pytest.mark.parametrize('key', NOT_OFFICIAL)
def test_other_benchmarks_follow_the_dataset(key):
    cfg = apply_benchmark(_config(), key)
    assert cfg.model.decode_head.mask_upsample == 'logits'
    assert cfg.model.get('vocabulary', None) is None
    dataset_cfg = Config.fromfile(osp.join(ROOT, 'configs', '_base_', 'datasets', f'{key}.py'))
    assert cfg.test_dataloader.dataset.type == dataset_cfg.test_dataloader.dataset.type


def test_switching_leaves_no_setting_behind():
    cfg = apply_benchmark(_config(), 'ade20k_150')
    assert cfg.model.decode_head.mask_upsample == 'original'
    cfg = apply_benchmark(cfg, 'voc21')
    assert cfg.model.decode_head.mask_upsample == 'logits'
    assert cfg.model.vocabulary is not None
    cfg = apply_benchmark(cfg, 'cityscapes')
    assert cfg.model.decode_head.mask_upsample == 'original'
    assert cfg.model.get('vocabulary', None) is None
    assert tuple(_resize(cfg)['scale']) == (2560, 1024)


def test_fcclip_voc21_names():
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no synonym shared by two classes
        vocab = Vocabulary.from_file(FCCLIP_VOC21)
    ours = Vocabulary(load_benchmark_classes('voc21'))
    assert len(vocab) == 21
    assert vocab.classes[1:] == ours.classes[1:]
    assert vocab.classes[0][0] == 'background' and vocab.classes[0] != ours.classes[0]
    assert len(vocab.classes[0]) == 72  # FC-CLIP's line, two repeated words dropped


def _read_yaml_chain(path):
    """The merged MODEL / INPUT / DATASETS values of an eval yaml and its _BASE_ chain."""
    yaml = pytest.importorskip('yaml')
    with open(path) as f:
        node = yaml.safe_load(f)
    base = node.pop('_BASE_', None)
    merged = _read_yaml_chain(osp.join(osp.dirname(path), base)) if base else {}

    def merge(a, b):
        for k, v in b.items():
            a[k] = merge(dict(a.get(k, {})), v) if isinstance(v, dict) else v
        return a

    return merge(merged, node)


def _official_names(path, skip_first):
    classes = []
    with open(path) as f:
        for line in f.read().splitlines():
            idx, name = line.split(':')
            if name == 'invalid_class_id' or (skip_first and int(idx) == 0):
                continue
            names = []
            for n in name.replace(', ', ',').split(','):
                n = ' '.join(n.split())
                if n not in names:
                    names.append(n)
            classes.append(tuple(names))
    return classes


# name file of each key (fcclip/data/datasets/register_*.py -> openseg_classes.get_*)
NAME_FILES = {
    'ade20k_150': ('ade20k_150_with_prompt_eng.txt', True),
    'ade20k_847': ('ade20k_847_with_prompt_eng.txt', True),
    'pascal_context_459': ('pascal_ctx_459_with_prompt_eng.txt', True),
    'pascal_context_59': ('pascal_ctx_59_with_prompt_eng.txt', True),
    'voc21': ('pascal_voc_21_with_prompt_eng.txt', False),
    'voc20': ('pascal_voc_21_with_prompt_eng.txt', False),  # [1:]: background removed
    'cityscapes': ('cityscapes_with_prompt_eng.txt', False),
}


@pytest.mark.skipif(not osp.isdir(osp.join(OFFICIAL_REPO, 'configs')),
                    reason='no clone of github.com/bytedance/fc-clip at $MMOVSS_FCCLIP_REPO')
@pytest.mark.parametrize('key', sorted(OFFICIAL))
def test_against_the_official_files(key):
    yaml_name = OFFICIAL[key][0]
    values = _read_yaml_chain(osp.join(OFFICIAL_REPO, 'configs', 'coco', 'panoptic-segmentation',
                                       'fcclip', yaml_name))
    min_size = values.get('INPUT', {}).get('MIN_SIZE_TEST', 800)  # detectron2 defaults
    max_size = values.get('INPUT', {}).get('MAX_SIZE_TEST', 1333)
    panoptic_on = values['MODEL']['MASK_FORMER']['TEST']['PANOPTIC_ON']
    cfg = apply_benchmark(_config(), key)
    assert tuple(_resize(cfg)['scale']) == (max_size, min_size)
    assert cfg.model.decode_head.mask_upsample == ('original' if panoptic_on else 'logits')
    name_file, skip_first = NAME_FILES[key]
    official = _official_names(osp.join(OFFICIAL_REPO, 'fcclip', 'data', 'datasets', name_file),
                               skip_first)
    if key == 'voc20':
        official = official[1:]
    assert list(_vocabulary(cfg, key).classes) == official
