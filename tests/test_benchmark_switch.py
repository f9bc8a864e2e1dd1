"""``apply_benchmark`` / ``tools/test.py --benchmark`` (issue #16).

The switch must give what the per-benchmark files it replaces gave: the
deleted ``*_eval-<benchmark>.py`` / ``*_<benchmark>.py`` files of trained
models (rebuilt here from their old text: model base + dataset base +
runtime + inference-only schedule), and the cited training-free files,
which stay as pure deltas on their protocol bases.
"""
import copy
import glob
import os
import os.path as osp
import re

import pytest

from mmovss.protocols import (
    BENCHMARK_KEYS,
    DEFAULT_PROTOCOL,
    apply_benchmark,
    protocol_benchmarks,
    protocol_of,
)
from mmovss.testing.tools import load_tool, work_dir_log

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')
BENCHMARKS = [k for k in BENCHMARK_KEYS if k != 'ovshapes']

# What mmengine's Runner reads from a config (Runner.from_cfg), and the test pipeline.
RUNNER_KEYS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
               'val_cfg', 'test_cfg', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
               'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
               'load_from', 'resume', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
               'default_scope', 'randomness', 'custom_imports', 'test_pipeline')

# Training config -> the model base its deleted evaluation configs inherited.
TRAINED = {
    'catseg/catseg_vit-b16_80k_coco-stuff171-384x384.py': 'catseg_vit-b16.py',
    'catseg/catseg_vit-l14_80k_coco-stuff171-384x384.py': 'catseg_vit-l14.py',
    'lseg/lseg_vit-b16_80k_coco-stuff171-480x480.py': 'lseg_vit-b16.py',
    'lseg/lseg_vit-l14_80k_coco-stuff171-480x480.py': 'lseg_vit-l14.py',
    'san/san_vit-b16_60k_coco-stuff171-640x640.py': 'san_vit-b16.py',
    'san/san_vit-l14_60k_coco-stuff171-640x640.py': 'san_vit-l14.py',
    'fcclip/fcclip_convnext-b_80k_coco-stuff171-1024x1024.py': 'fcclip_convnext-b.py',
    'fcclip/fcclip_convnext-l_80k_coco-stuff171-1024x1024.py': 'fcclip_convnext-l.py',
    'openseg/openseg_r101_80k_coco-stuff171-captions-640x640.py': 'openseg_r101.py',
    'ovseg/ovseg_r101c-vit-b16_120k_coco-stuff171-512x512.py': 'ovseg_r101c_vit-b16.py',
    'zegformer/zegformer_r101-vit-b16_60k_coco-stuff171-640x640.py':
        'zegformer_r101_vit-b16.py',
    'sam_clip/sam-clip_vit-h-vit-b16_ade20k_150.py': 'sam_clip_vit-h_vit-b16.py',
}
# The published training-free families: method -> its cited files' prefix.
TRAINING_FREE = ('sclip/sclip_vit-b16', 'naclip/naclip_vit-b16', 'naclip/naclip-pamr_vit-b16',
                 'clearclip/clearclip_vit-b16', 'maskclip/maskclip_vit-b16',
                 'proxyclip/proxyclip_vit-b16-dino-b8')
PUBLISHED = ('voc21', 'pascal_context_60', 'coco_object', 'voc20', 'pascal_context_59',
             'coco_stuff171', 'cityscapes', 'ade20k_150')

_CACHE = {}


def load(rel):
    path = rel if osp.isabs(rel) else osp.join(CONFIGS, rel)
    if path not in _CACHE:
        _CACHE[path] = Config.fromfile(path)
    return _CACHE[path]


def per_pair_config(model_base, key, tmp_path):
    """The text of a deleted per-benchmark file, with absolute base paths."""
    path = tmp_path / f'{osp.splitext(model_base)[0]}_eval-{key}.py'
    bases = [f'{CONFIGS}/_base_/{rel}' for rel in (
        f'models/{model_base}', f'datasets/{key}.py', 'default_runtime.py',
        'schedules/inference_only.py')]
    path.write_text(f'_base_ = {bases!r}\ntrain_dataloader = None\n')
    return Config.fromfile(str(path))


def _norm(value):
    """Paths compared as files (the same class-name file, another spelling)."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_norm(v) for v in value)
    if isinstance(value, str) and os.sep in value and osp.exists(value):
        return osp.realpath(value)
    return value


def runner_view(cfg):
    cfg = cfg.to_dict() if hasattr(cfg, 'to_dict') else cfg
    return {k: _norm(cfg.get(k)) for k in RUNNER_KEYS}


def assert_same_runner_config(got, want):
    got, want = runner_view(got), runner_view(want)
    differing = [k for k in RUNNER_KEYS if got[k] != want[k]]
    assert not differing, {k: (got[k], want[k]) for k in differing}


# ------------------------------------------------------------------ keys
def test_benchmark_keys_are_the_dataset_bases():
    names = {osp.splitext(osp.basename(p))[0]
             for p in glob.glob(osp.join(CONFIGS, '_base_', 'datasets', '*.py'))}
    assert set(BENCHMARK_KEYS) == names
    assert len(BENCHMARK_KEYS) == len(set(BENCHMARK_KEYS))


def test_unknown_benchmark_lists_the_valid_keys():
    cfg = load('san/san_vit-b16_60k_coco-stuff171-640x640.py')
    with pytest.raises(ValueError, match='ade20k_847, ade20k_150') as info:
        apply_benchmark(cfg, 'ade847')
    assert 'ade847' in str(info.value)


def test_a_family_without_a_setting_lists_its_benchmarks():
    cfg = load('sclip/sclip_vit-b16_voc21.py')
    with pytest.raises(ValueError, match=r"Protocol 'sclip' has no setting for benchmark "
                                         r"'ovshapes'.*voc21"):
        apply_benchmark(cfg, 'ovshapes')
    cfg = copy.deepcopy(cfg)
    cfg.protocol = 'no_such_family'
    with pytest.raises(ValueError, match="Unknown protocol 'no_such_family'.*sclip"):
        apply_benchmark(cfg, 'voc21')


def test_switch_does_not_modify_its_input():
    cfg = load('sclip/sclip_vit-b16_voc21.py')
    before = runner_view(cfg)
    apply_benchmark(cfg, 'ade20k_150')
    assert runner_view(cfg) == before


# ------------------------------------------------------- trained models
@pytest.mark.parametrize('train_cfg', sorted(TRAINED))
def test_trained_model_switch_equals_the_deleted_per_pair_config(train_cfg, tmp_path):
    cfg = load(train_cfg)
    assert protocol_of(cfg) == DEFAULT_PROTOCOL
    for key in BENCHMARKS:
        got = apply_benchmark(cfg, key)
        want = per_pair_config(TRAINED[train_cfg], key, tmp_path)
        got_view, want_view = runner_view(got), runner_view(want)
        # Training configs pad training crops to a fixed size (data_preprocessor
        # `size`, `size_divisor`); mmseg's SegDataPreProcessor reads them only
        # when training (testing pads by its `test_cfg`), so they are the one
        # model difference to the per-pair files, which had the base's values.
        for view in (got_view, want_view):
            view['model']['data_preprocessor'].pop('size', None)
            view['model']['data_preprocessor'].pop('size_divisor', None)
        assert got_view == want_view, (train_cfg, key)
        assert got.train_dataloader is None
        assert got.test_dataloader.dataset.type == want.test_dataloader.dataset.type


def test_only_training_fields_of_the_preprocessor_differ():
    cfg = load('zegformer/zegformer_r101-vit-b16_60k_coco-stuff171-640x640.py')
    base = load('_base_/models/zegformer_r101_vit-b16.py')
    got = apply_benchmark(cfg, 'voc20').model.data_preprocessor
    want = base.model.data_preprocessor
    assert {k for k in set(got) | set(want) if got.get(k) != want.get(k)} <= {
        'size', 'size_divisor'}
    assert got.get('test_cfg') == want.get('test_cfg')


# ----------------------------------------------------- training-free
def _cited(prefix, key):
    return f'{prefix}_{key}.py'


@pytest.mark.parametrize('prefix', TRAINING_FREE)
def test_training_free_switch_equals_the_cited_configs(prefix):
    # from the config with the most settings (background, thresholds) to all
    source = load(_cited(prefix, 'voc21'))
    for key in PUBLISHED:
        assert_same_runner_config(apply_benchmark(source, key), load(_cited(prefix, key)))
    # and from every benchmark back to VOC-20 (whole-image mode for NACLIP)
    for key in PUBLISHED:
        assert_same_runner_config(apply_benchmark(load(_cited(prefix, key)), 'voc20'),
                                  load(_cited(prefix, 'voc20')))


@pytest.mark.parametrize('prefix', TRAINING_FREE)
def test_unpublished_benchmark_follows_the_dataset_and_switches_back(prefix):
    source = load(_cited(prefix, 'voc21'))
    ade = apply_benchmark(source, 'ade20k_847')
    assert ade.model.vocabulary is None
    assert ade.custom_hooks == [dict(type='DatasetVocabularyHook')]
    assert ade.test_dataloader.dataset.type == 'ADE20K847Dataset'
    # the ADE-150 geometry and thresholds of the family
    ade150 = load(_cited(prefix, 'ade20k_150'))
    assert ade.test_pipeline == ade150.test_pipeline
    assert ade.model.decode_head == ade150.model.decode_head
    assert ade.model.test_cfg == ade150.model.test_cfg
    assert_same_runner_config(apply_benchmark(ade, 'voc21'), source)


def _leaves(node, prefix=''):
    if isinstance(node, dict) and not node.get('_delete_'):
        return {leaf for k, v in node.items() for leaf in _leaves(v, f'{prefix}.{k}')}
    return {prefix}


@pytest.mark.parametrize('family', sorted(
    d for d in os.listdir(osp.join(CONFIGS, '_base_', 'protocols'))
    if osp.isdir(osp.join(CONFIGS, '_base_', 'protocols', d))))
def test_every_protocol_of_a_family_sets_the_same_keys(family):
    """Else switching between two benchmarks would keep a setting of the first."""
    keys = protocol_benchmarks(family)
    assert keys
    sets = {}
    for key in keys:
        cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'protocols', family, f'{key}.py'))
        sets[key] = _leaves(cfg.protocol_model.to_dict())
        assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline
        assert cfg.train_dataloader is None
    first = next(iter(sets.values()))
    assert all(s == first for s in sets.values()), sets
    assert '.vocabulary' in first


def test_cited_training_free_configs_are_pure_deltas():
    for prefix in TRAINING_FREE:
        for key in PUBLISHED:
            lines = [ln for ln in open(osp.join(CONFIGS, _cited(prefix, key)))
                     if ln.strip() and not ln.lstrip().startswith('#')]
            assert len(lines) <= 3, (prefix, key, lines)
            assert lines[-1].strip() == 'model = {{_base_.protocol_model}}'


# ------------------------------------------------- tools/test.py end to end
@pytest.fixture(scope='module')
def tool_main():
    """``tools/test.py``'s ``main``, run in this process (no interpreter start
    per run); its own command line is run end to end in tests/test_tools.py."""
    return load_tool('test.py').main


def _run_test_tool(main, args, work_dir):
    """The per-class table rows and the summary line of one ``tools/test.py``
    run, read from the log file it wrote in ``work_dir``."""
    main([*args, '--work-dir', str(work_dir)])
    log = work_dir_log(work_dir)
    table = [ln.split(' - ')[-1].strip() for ln in log.splitlines()
             if re.match(r'.*\|\s*[\w ]+\s*\|\s*[\d.]+\s*\|', ln)]
    summary = re.findall(r'mIoU: [\d.]+', log)
    assert table and summary, log[-3000:]
    return table, summary


def _data_options(root):
    return ['--cfg-options', f'test_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}']


TINY_TRAINING_FREE = '''_base_ = [{base!r}]
randomness = dict(seed=0)  # the same random CLIP in both runs
tiny = {tiny!r}
model = dict(
    backbone=dict(model_name=None, model_cfg=tiny, pretrained=None),
    text_encoder=dict(model_name=None, model_cfg=tiny, pretrained=None, cache_dir=None),
    decode_head=dict(in_channels=tiny['embed_dim']))
'''


def test_test_tool_benchmark_equals_per_pair_config_on_tiny_models(tool_main, tmp_path):
    """Same metrics from ``--benchmark KEY`` as from the per-benchmark file."""
    from mmovss.testing.benchmark_data import make_benchmark_tree
    from mmovss.testing.clip import tiny_clip_cfg
    voc20 = make_benchmark_tree('voc20', 'mmseg', str(tmp_path / 'voc20'), 20)
    voc21 = make_benchmark_tree('voc21', 'mmseg', str(tmp_path / 'voc21'), 21)
    # (a) a model whose vocabulary follows the dataset: the deleted per-pair
    # form (model base + dataset base + runtime + inference-only schedule)
    # against the switch from its own (OVShapes) config.
    per_pair = per_pair_config('ovshapes_tiny_clip.py', 'voc20', tmp_path)
    per_pair_path = tmp_path / 'ovshapes_tiny_clip_eval-voc20.py'
    assert per_pair.test_dataloader.dataset.type == 'PascalVOC20Dataset'
    want = _run_test_tool(tool_main, [str(per_pair_path), *_data_options(voc20.data_root)],
                          tmp_path / 'w1')
    dense_clip = osp.join(CONFIGS, 'ovshapes', 'dense-clip_tiny-clip_ovshapes.py')
    got = _run_test_tool(tool_main, [dense_clip,
                          '--benchmark', 'voc20', *_data_options(voc20.data_root)],
                         tmp_path / 'w2')
    assert got == want
    assert len(got[0]) >= 20  # one table row per VOC-20 class
    # (b) a training-free family: SCLIP's VOC-20 config switched to VOC-21
    # (class names with background, logit scale 65, thresholds) against the
    # cited VOC-21 config, both with the same tiny random CLIP.
    tiny = tiny_clip_cfg()
    for name in ('voc20', 'voc21'):
        (tmp_path / f'sclip_tiny_{name}.py').write_text(TINY_TRAINING_FREE.format(
            base=osp.join(CONFIGS, 'sclip', f'sclip_vit-b16_{name}.py'), tiny=tiny))
    want = _run_test_tool(tool_main, [str(tmp_path / 'sclip_tiny_voc21.py'),
                           *_data_options(voc21.data_root)], tmp_path / 'w3')
    got = _run_test_tool(tool_main, [str(tmp_path / 'sclip_tiny_voc20.py'), '--benchmark', 'voc21',
                          *_data_options(voc21.data_root)], tmp_path / 'w4')
    assert got == want
    assert len(got[0]) >= 21  # VOC-21's classes (the background first), not VOC-20's


def test_inferencer_benchmark_applies_the_protocol_before_cfg_options(tmp_path):
    from mmovss.apis import OpenVocabInferencer
    from mmovss.testing.clip import tiny_clip_cfg
    from mmovss.vocab import Vocabulary
    path = tmp_path / 'sclip_tiny_voc20.py'
    path.write_text(TINY_TRAINING_FREE.format(
        base=osp.join(CONFIGS, 'sclip', 'sclip_vit-b16_voc20.py'), tiny=tiny_clip_cfg()))
    plain = OpenVocabInferencer(str(path), device='cpu')
    assert plain.vocabulary.num_classes == 20
    assert plain.model.decode_head.logit_scale == 40.0
    switched = OpenVocabInferencer(str(path), device='cpu', benchmark='voc21',
                                   cfg_options={'model.decode_head.prob_thd': 0.3})
    assert switched.vocabulary.num_classes == 21
    published = Vocabulary.build(osp.join(CONFIGS, '_base_', 'vocabularies', 'sclip', 'voc21.txt'))
    assert switched.vocabulary.class_names == published.class_names
    assert switched.model.decode_head.logit_scale == 65.0  # SCLIP's VOC-21 protocol
    assert switched.model.decode_head.prob_thd == 0.3  # cfg_options over the protocol
    resize = [t for t in switched.cfg.test_dataloader.dataset.pipeline if t['type'] == 'Resize']
    assert resize[0]['scale'] == (2048, 336)
    with pytest.raises(ValueError, match='valid keys are'):
        OpenVocabInferencer(str(path), device='cpu', benchmark='voc22')


def test_every_declared_protocol_has_its_bases():
    for path in glob.glob(osp.join(CONFIGS, '_base_', 'models', '*.py')):
        family = protocol_of(Config.fromfile(path))
        if family != DEFAULT_PROTOCOL:
            assert set(PUBLISHED) <= set(protocol_benchmarks(family)), path


def test_test_tool_rejects_an_unknown_benchmark(capsys):
    tool = load_tool('test.py')
    assert tool.parse_args(['c.py', '--benchmark', 'voc21']).benchmark == 'voc21'
    with pytest.raises(SystemExit):
        tool.parse_args(['c.py', '--benchmark', 'voc22'])
    err = capsys.readouterr().err
    assert "invalid choice: 'voc22'" in err and 'ade20k_847' in err


# ------------------------------------------------------------ naming rule
def _naming_problem(folder, name):
    """None if ``name`` follows docs/configs.md's rule, else the reason."""
    key = next((k for k in sorted(BENCHMARK_KEYS, key=len, reverse=True)
                if name.endswith(f'_{k}')), None)
    stem = name[:-len(key) - 1] if key else name
    fields = stem.split('_')
    if not all(re.fullmatch(r'[a-z0-9.]+(-[a-z0-9.]+)*', f) for f in fields):
        return f'fields {fields} must be lower-case words joined by "-"'
    if not ((key and len(fields) == 2) or len(fields) == 4):
        return (f'{len(fields)} fields: want {{algo}}_{{backbone}}_{{KEY}} or '
                f'{{algo}}_{{backbone}}_{{schedule}}_{{train-data}}[-{{crop}}][_{{KEY}}]')
    if folder != 'ovshapes' and not fields[0].startswith(folder.replace('_', '-')):
        return f'method field {fields[0]!r} does not name the folder {folder!r}'
    return None


def test_config_names_follow_one_rule():
    problems = {}
    for path in glob.glob(osp.join(CONFIGS, '*', '*.py')):
        folder, name = path.split(os.sep)[-2], osp.basename(path)[:-3]
        if folder == '_base_':
            continue
        problem = _naming_problem(folder, name)
        if problem:
            problems[f'{folder}/{name}'] = problem
    assert not problems, problems
    # the rule rejects the former forms
    assert _naming_problem('san', 'san_vit-b16_60k_coco-stuff171-640x640_eval-voc20')
    assert _naming_problem('sclip', 'sclip_vit-b16_pc59')
    assert _naming_problem('san', 'san_vit-b16_60k_coco-stuff171-640x640_voc20') is None
    assert _naming_problem('ovshapes', 'dense_refine_tiny-clip_1k_ovshapes-seen')
