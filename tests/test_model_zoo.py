"""The model zoo: metafiles, released names, released checkpoints, docs/reproduce.md.

* Every ``configs/*/metafile.yaml`` entry: its config builds (with the tiny
  stand-ins of tests/test_every_config_builds.py), every name and alias
  resolves to it alone, every published result names a known benchmark, and
  docs/reproduce.md is the generator's output.
* A released checkpoint of a real format, made here with tiny shapes: an
  mmseg 1.x SAN state dict (mmseg's key layout, written by the package's
  reverse converter from a tiny random mmovss SAN). It is recognised by its
  keys, converted once and cached (a counter on the converter), loaded
  strictly by the inferencer and by tools/demo.py (subprocess), all without
  network. Truncated, incomplete, foreign files and unreachable URLs fail
  with errors that name the file or URL and the fix.
"""
import copy
import json
import os
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import mmovss  # noqa: F401
from mmovss.apis import model_zoo
from mmovss.apis.model_zoo import (
    benchmark_key,
    get_model_info,
    name_conflicts,
    released_models,
)
from mmovss.apis.released_weights import (
    CONVERTED_META_KEY,
    ReleasedWeightsError,
    converted_path,
    download_path,
    prepare_weights,
)
from mmovss.apis.reproduce_table import NOT_MEASURED, render_reproduce, reproduce_rows
from mmovss.converters import san_mmseg
from mmovss.protocols import BENCHMARK_KEYS
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.testing.tools import load_tool

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / 'tests'))
ALL_ENTRIES = model_zoo._metafile_models(str(REPO / 'configs'))
NAMES = ['cat', 'dog', 'sky', 'road']
OFFLINE_URL = 'http://127.0.0.1:9/released/model_base.pth'  # discard port: refused


def _ids(entries):
    return [e.name for e in entries]


# ------------------------------------------------------------ the metafiles
_BUILT = set()  # architectures built already (entries often share a config)


@pytest.mark.parametrize('info', ALL_ENTRIES, ids=_ids(ALL_ENTRIES))
def test_metafile_entry_config_builds(info):
    """The config exists, loads and builds (tiny stand-ins for named CLIPs)."""
    from test_every_config_builds import _architecture_key, narrow_head_widths, tiny_stand_ins

    from mmovss.benchmarking.random_weights import pop_sam_markers, use_random_weights

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    assert osp.isfile(info.config), f'{info.metafile}: {info.name}: no config {info.config}'
    init_default_scope('mmseg')
    cfg = Config.fromfile(info.config)
    original = cfg.model.to_dict()
    model = tiny_stand_ins(use_random_weights(copy.deepcopy(original)))
    narrow_head_widths(model, original)
    pop_sam_markers(model)
    key = json.dumps(_architecture_key(model), sort_keys=True)
    if key not in _BUILT:
        assert sum(p.numel() for p in MODELS.build(model).parameters()) > 0
        _BUILT.add(key)


def test_every_name_and_alias_resolves_to_its_entry_alone():
    assert name_conflicts() == []
    for info in ALL_ENTRIES:
        for name in [info.name, *info.aliases]:
            found = get_model_info(name)
            assert (found.config, found.weights) == (info.config, info.weights), name


def test_published_results_name_known_benchmarks():
    for info in ALL_ENTRIES:
        for result in info.results:
            where = f'{info.metafile}: {info.name} on {result.dataset!r}'
            assert result.benchmark in BENCHMARK_KEYS, where
            assert result.miou is not None and 0 < result.miou <= 100, where
            assert result.source, f'{where}: no Source'
        if info.weights:
            assert info.weights.startswith(('http://', 'https://')), \
                f'{info.name}: Weights must be the official URL, got {info.weights!r}'


def test_web_page_weights_name_the_file_to_download():
    """A Weights link that is a web page or folder (Google Drive) needs
    ``Official File``: the offline error and docs/reproduce.md name it (FC-CLIP's
    said /path/to/FILE and /path/to/CHECKPOINT.pth)."""
    for info in ALL_ENTRIES:
        if info.weights and model_zoo._url_file_name(info.weights) is None:
            assert info.weights_file, f'{info.metafile}: {info.name} lacks Official File'


def test_reproduce_doc_is_the_generator_output():
    text = (REPO / 'docs' / 'reproduce.md').read_text(encoding='utf-8')
    assert text == render_reproduce(), \
        'docs/reproduce.md is stale: run python tools/misc/reproduce_table.py'
    rows = reproduce_rows()
    assert len(rows) >= len(released_models())
    assert all(row['measured'] == NOT_MEASURED for row in rows)


def _zoo(tmp_path, models_yaml, collections_yaml=''):
    root = tmp_path / 'configs'
    (root / 'foo').mkdir(parents=True)
    (root / 'foo' / 'foo_cfg.py').write_text('x = 1\n')
    (root / 'foo' / 'bar_cfg.py').write_text('x = 2\n')
    (root / 'foo' / 'metafile.yaml').write_text(collections_yaml + 'Models:\n' + models_yaml)
    return root


def test_results_sources_and_benchmark_names(tmp_path):
    root = _zoo(tmp_path, (
        '- Name: foo_released\n  In Collection: Foo\n  Alias: foo-short\n'
        '  Config: configs/foo/foo_cfg.py\n  Weights: https://x.org/foo/model_base.pth\n'
        '  Results:\n'
        '  - {Task: Semantic Segmentation, Dataset: A-847, Metrics: {mIoU: 12.5},'
        ' Source: paper Table 1}\n'
        '  - {Task: Semantic Segmentation, Dataset: PC-59, Metrics: {mIoU: 57.5}}\n'),
        'Collections:\n- Name: Foo\n  Paper: {Title: Foo, URL: https://arxiv.org/abs/1}\n')
    (info, ) = released_models(str(root))
    assert [(r.benchmark, r.miou) for r in info.results] == [
        ('ade20k_847', 12.5), ('pascal_context_59', 57.5)]
    assert [r.source for r in info.results] == ['paper Table 1', 'https://arxiv.org/abs/1']
    rows = reproduce_rows(str(root))
    assert [r['benchmark'] for r in rows] == ['ade20k_847', 'pascal_context_59']
    assert rows[0]['command'] == ('python tools/test.py configs/foo/foo_cfg.py '
                                  'https://x.org/foo/model_base.pth --benchmark ade20k_847')
    page = render_reproduce(str(root))
    assert f'| ade20k_847 | 12.5 | paper Table 1 | {NOT_MEASURED} | `{rows[0]["command"]}` |' \
        in page
    assert '## foo_released (also: foo-short)' in page
    for key in BENCHMARK_KEYS:
        assert benchmark_key(key) == key and benchmark_key(key.upper()) == key
    assert benchmark_key('PAS-20') == 'voc20' and benchmark_key('Pascal VOC') is None


def test_unknown_benchmark_and_duplicate_names_are_reported(tmp_path):
    root = _zoo(tmp_path, (
        '- Name: foo_released\n  Alias: [shared]\n  Config: configs/foo/foo_cfg.py\n'
        '  Weights: https://x.org/a.pth\n'
        '  Results: {Dataset: Mars-12, Metrics: {mIoU: 1.0}}\n'
        '- Name: bar_cfg\n  Alias: shared\n  Config: configs/foo/foo_cfg.py\n'
        '  Weights: https://x.org/b.pth\n'))
    with pytest.raises(ValueError, match="'Mars-12'.*ade20k_847"):
        reproduce_rows(str(root))
    problems = name_conflicts(str(root))
    assert any("'shared'" in p for p in problems)
    assert any("'bar_cfg' is the config" in p for p in problems)
    assert name_conflicts(str(_zoo(tmp_path / 'ok', (
        '- Name: foo_cfg\n  Config: configs/foo/foo_cfg.py\n')))) == []


def test_generator_tool_check_mode(tmp_path):
    root = _zoo(tmp_path, '- Name: foo_released\n  Config: configs/foo/foo_cfg.py\n'
                '  Weights: https://x.org/a.pth\n')
    out = tmp_path / 'reproduce.md'
    tool = load_tool('misc/reproduce_table.py')
    args = ['--configs', str(root), '--out', str(out)]
    assert tool.main(args + ['--check']) == 1 and not out.exists()
    assert tool.main(args) == 0
    assert 'none published' in out.read_text()
    assert tool.main(args + ['--check']) == 0


# ------------------------------------------------ a tiny released checkpoint
CLIP = tiny_clip_cfg('vit', vision_cfg=dict(layers=4), quick_gelu=True)
SAN_MODEL = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.7, 116.7, 104.0],
                           std=[68.5, 66.6, 70.3], bgr_to_rgb=True, pad_val=0,
                           seg_pad_val=255),
    backbone=dict(type='SANCLIPViT', model_cfg=CLIP, out_indices=(0, 1, 2),
                  encoder_resolution=0.5),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP,
                      templates=['a photo of a {}.']),
    decode_head=dict(
        type='SANHead', clip=dict(model_cfg=CLIP), start_block=3,
        side_adapter=dict(embed_dims=32, patch_size=8, num_queries=6, num_layers=4,
                          num_heads=2, fusion_index=(0, 1, 2, 3), pretrain_grid=80,
                          decoder=dict(embed_channels=16, mlp_channels=16)),
        deep_supervision_idxs=(3, ),
        criterion=dict(type='MaskClassificationLoss', num_points=64)),
    vocabulary=NAMES, test_cfg=dict(mode='whole'))
PIPELINE = [dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(64, 64), keep_ratio=False),
            dict(type='PackSegInputs')]


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    """A tiny SAN as mmseg 1.x releases it, its config and our weights."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    folder = tmp_path_factory.mktemp('released')
    ours = MODELS.build(copy.deepcopy(SAN_MODEL))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in ours.decode_head.side_adapter.parameters():
            param.copy_(0.2 * torch.randn(param.shape, generator=gen))
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    mmseg_state = san_mmseg.mmovss_to_mmseg(state)
    official = folder / 'san_tiny_mmseg.pth'
    torch.save(dict(state_dict=mmseg_state, meta=dict(mmseg_version='1.2.2')), official)
    config = folder / 'san_tiny.py'
    config.write_text(f'model = {SAN_MODEL!r}\n'
                      f'test_dataloader = dict(dataset=dict(pipeline={PIPELINE!r}))\n')
    image = folder / 'photo.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (48, 40, 3), np.uint8))
    return dict(folder=folder, official=official, config=config, image=image, state=state,
                mmseg_state=mmseg_state)


@pytest.fixture
def convert_counter(monkeypatch):
    calls = []
    original = san_mmseg.convert

    def counting(state_dict):
        calls.append(len(state_dict))
        return original(state_dict)

    monkeypatch.setattr(san_mmseg, 'convert', counting)
    return calls


def test_recognised_converted_once_and_cached(released, tmp_path, convert_counter):
    cache = tmp_path / 'cache'
    first = prepare_weights(str(released['official']), cache_dir=str(cache))
    assert (first.format, first.converted, first.fresh) == ('san_mmseg', True, True)
    assert first.path.startswith(str(cache)) and convert_counter == [len(released['mmseg_state'])]
    saved = torch.load(first.path, weights_only=True)
    assert set(saved['state_dict']) == set(released['state'])
    for key, value in released['state'].items():
        torch.testing.assert_close(saved['state_dict'][key], value, rtol=0, atol=0)
    assert saved['meta'][CONVERTED_META_KEY]['format'] == 'san_mmseg'
    mtime = os.stat(first.path).st_mtime_ns
    second = prepare_weights(str(released['official']), cache_dir=str(cache))
    assert (second.path, second.fresh, second.converted) == (first.path, False, True)
    assert len(convert_counter) == 1 and os.stat(first.path).st_mtime_ns == mtime
    # the converted file passed again is recognised as a conversion (loaded strictly)
    again = prepare_weights(first.path, cache_dir=str(cache))
    assert again.converted and again.path == first.path and len(convert_counter) == 1
    # the source changed (a new file at the same path): converted again
    source = tmp_path / 'copy.pth'
    source.write_bytes(released['official'].read_bytes())
    prepare_weights(str(source), cache_dir=str(cache))
    os.utime(source, ns=(1, 1))
    third = prepare_weights(str(source), cache_dir=str(cache))
    assert third.fresh and len(convert_counter) == 3


RAN = []


def record_run(tag):
    """Would be called if a checkpoint's pickled object were rebuilt."""
    RAN.append(tag)
    return tag


class _Callback:
    """An object a training framework stores beside the weights (PyTorch
    Lightning keys its callbacks by class); rebuilding it calls record_run."""

    def __reduce__(self):
        return record_run, ('code in the checkpoint ran', )


def test_python_objects_beside_the_weights_are_not_run(released, tmp_path, convert_counter):
    """A Lightning-style file (state_dict + pickled objects): the objects
    become inert stand-ins (nothing imported or run), the weights convert."""
    path = tmp_path / 'demo_e200.ckpt'
    torch.save(dict(state_dict=released['mmseg_state'], callbacks={'cb': _Callback()},
                    hyper_parameters=dict(lr=0.1)), path)
    from mmovss.runtime import load_checkpoint_safely
    with pytest.raises(ValueError, match='weights-only loading does not allow'):
        load_checkpoint_safely(str(path))
    prepared = prepare_weights(str(path), cache_dir=str(tmp_path / 'cache'))
    assert prepared.format == 'san_mmseg' and len(convert_counter) == 1
    assert RAN == []


def test_a_foreign_file_in_the_cache_is_never_overwritten(released, tmp_path):
    cache = tmp_path / 'cache'
    dst = Path(converted_path(str(released['official']), 'san_mmseg', str(cache)))
    dst.parent.mkdir(parents=True)
    torch.save({'state_dict': {'x': torch.zeros(1)}}, dst)
    before = dst.read_bytes()
    with pytest.raises(ReleasedWeightsError, match='not overwritten'):
        prepare_weights(str(released['official']), cache_dir=str(cache))
    assert dst.read_bytes() == before


def _inferencer(released, cache, **kwargs):
    from mmovss.apis import OpenVocabInferencer
    return OpenVocabInferencer(str(released['config']), device='cpu', vocabulary=NAMES,
                               weights_dir=str(cache), **kwargs)


def test_inferencer_uses_the_converted_weights(released, tmp_path, convert_counter):
    cache = tmp_path / 'cache'
    inferencer = _inferencer(released, cache, weights=str(released['official']))
    assert inferencer.weights.format == 'san_mmseg' and len(convert_counter) == 1
    loaded = inferencer.model.state_dict()
    for key, value in released['state'].items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    labels = inferencer(str(released['image']))['predictions']['sem_seg']
    assert labels.shape == (48, 40)
    again = _inferencer(released, cache, weights=str(released['official']))
    assert len(convert_counter) == 1 and not again.weights.fresh
    np.testing.assert_array_equal(again(str(released['image']))['predictions']['sem_seg'],
                                  labels)
    # tools/demo.py in a fresh interpreter: the cached conversion, the same labels
    mtime = os.stat(inferencer.weights.path).st_mtime_ns
    out = tmp_path / 'out'
    env = dict(os.environ, HF_HUB_OFFLINE='1', no_proxy='*')
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools/demo.py'), str(released['image']), '-v',
         '; '.join(NAMES), '-c', str(released['config']), '--weights',
         str(released['official']), '--weights-dir', str(cache), '--out', str(out),
         '--device', 'cpu'], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'Converting' not in proc.stdout
    assert os.stat(inferencer.weights.path).st_mtime_ns == mtime
    demo_labels = cv2.imread(str(out / 'pred' / 'photo.png'), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(demo_labels, labels)
    assert json.loads(proc.stdout.strip().splitlines()[-1])['images'] == 1


def test_parts_a_release_lacks_by_design_come_from_the_config(released, tmp_path,
                                                             monkeypatch):
    """A converter that declares PRETRAINED_PREFIXES (e.g. ZegFormer's
    releases ship without CLIP): those keys may be absent, no other."""
    original = san_mmseg.convert
    monkeypatch.setattr(san_mmseg, 'convert', lambda sd: {
        k: v for k, v in original(sd).items() if not k.startswith('text_encoder.')})
    cache = tmp_path / 'cache'
    with pytest.raises(ReleasedWeightsError, match='do not fit.*missing keys.*text_encoder'):
        _inferencer(released, cache, weights=str(released['official']))
    monkeypatch.setattr(san_mmseg, 'PRETRAINED_PREFIXES', ('text_encoder.', ), raising=False)
    inferencer = _inferencer(released, cache, weights=str(released['official']))
    assert inferencer.weights.absent_prefixes == ('text_encoder.', )
    loaded = inferencer.model.state_dict()
    for key, value in released['state'].items():
        if not key.startswith('text_encoder.'):
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    monkeypatch.setattr(san_mmseg, 'PRETRAINED_PREFIXES', ('text_encoder.tower.ln', ))
    with pytest.raises(ReleasedWeightsError, match='missing keys'):
        _inferencer(released, cache, weights=str(released['official']))


def test_truncated_incomplete_and_foreign_files_fail_clearly(released, tmp_path):
    cache = str(tmp_path / 'cache')
    data = released['official'].read_bytes()
    truncated = tmp_path / 'model_base.pth'
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ReleasedWeightsError, match='model_base.pth.*truncated or corrupt'):
        prepare_weights(str(truncated), cache_dir=cache)
    incomplete = tmp_path / 'incomplete.pth'
    state = {k: v for k, v in released['mmseg_state'].items()
             if not k.startswith('text_encoder.bg_embed')}
    torch.save({'state_dict': state}, incomplete)
    with pytest.raises(ReleasedWeightsError,
                       match=r"incomplete.pth.*san_mmseg.*1 missing key.*bg_embed"):
        prepare_weights(str(incomplete), cache_dir=cache)
    foreign = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'encoder.weight': torch.zeros(2, 2)}}, foreign)
    assert not prepare_weights(str(foreign), cache_dir=cache).converted
    with pytest.raises(ReleasedWeightsError, match='foreign.pth.*do not fit.*missing keys'):
        _inferencer(released, cache, weights=str(foreign))
    with pytest.raises(FileNotFoundError, match='nothere.pth'):
        prepare_weights(str(tmp_path / 'nothere.pth'), cache_dir=cache)


def test_offline_url_names_the_url_and_the_local_file_option(tmp_path):
    cache = tmp_path / 'cache'
    with pytest.raises(ReleasedWeightsError) as err:
        prepare_weights(OFFLINE_URL, cache_dir=str(cache))
    message = str(err.value)
    assert OFFLINE_URL in message and '--weights /path/to/model_base.pth' in message
    assert download_path(OFFLINE_URL, str(cache)) in message
    leftovers = [p for p in cache.rglob('*') if p.is_file()]
    assert leftovers == []  # no partial download left behind


def test_a_folder_url_names_the_file_to_download(tmp_path, monkeypatch):
    """Weights that link a folder (a Google Drive folder of several files):
    nothing is downloaded, the error and the reproduce command name the file."""
    folder_url = 'https://drive.google.com/drive/folders/1abcDEF'
    root = _zoo(tmp_path, (
        f'- Name: foo_released\n  Config: configs/foo/foo_cfg.py\n  Weights: {folder_url}\n'
        '  Metadata: {Official File: foo_R101.pth}\n'))
    monkeypatch.setattr(model_zoo, 'configs_root', lambda: str(root))
    with pytest.raises(ReleasedWeightsError,
                       match=r'folder.*\(foo_R101.pth for foo_released\).*'
                       r'--weights /path/to/foo_R101.pth'):
        prepare_weights(folder_url, cache_dir=str(tmp_path / 'cache'))
    assert not (tmp_path / 'cache').exists()
    (row, ) = reproduce_rows(str(root))
    assert row['command'] == 'python tools/test.py configs/foo/foo_cfg.py /path/to/foo_R101.pth'


def test_released_name_downloads_or_takes_a_local_file(released, tmp_path, monkeypatch,
                                                       convert_counter):
    """A metafile name brings its URL (offline: the clear error); --weights
    with the file as released replaces it; a copy in the cache is used."""
    from mmovss.apis import OpenVocabInferencer
    root = tmp_path / 'configs'
    (root / 'san').mkdir(parents=True)
    (root / 'san' / 'san_tiny.py').write_text(released['config'].read_text())
    (root / 'san' / 'metafile.yaml').write_text(
        f'Models:\n- Name: san_tiny_released\n  Alias: san-tiny\n'
        f'  Config: configs/san/san_tiny.py\n  Weights: {OFFLINE_URL}\n')
    monkeypatch.setattr(model_zoo, 'configs_root', lambda: str(root))
    cache = tmp_path / 'cache'
    with pytest.raises(ReleasedWeightsError, match=OFFLINE_URL):
        OpenVocabInferencer('san-tiny', device='cpu', weights_dir=str(cache))
    local = OpenVocabInferencer('san-tiny', weights=str(released['official']), device='cpu',
                                vocabulary=NAMES, weights_dir=str(cache))
    assert local.weights.format == 'san_mmseg'
    # the file placed where the download would go: used, converted once
    target = Path(download_path(OFFLINE_URL, str(cache)))
    target.parent.mkdir(parents=True, exist_ok=True)  # the failed download made it
    target.write_bytes(released['official'].read_bytes())
    named = OpenVocabInferencer('san_tiny_released', device='cpu', vocabulary=NAMES,
                                weights_dir=str(cache))
    assert named.weights.source == OFFLINE_URL and named.weights.format == 'san_mmseg'
    assert len(convert_counter) == 2  # the local file, then the cached download


def test_test_tool_takes_a_released_name_or_the_released_file(released, tmp_path, monkeypatch,
                                                              convert_counter, capsys):
    """tools/test.py (in-process): a name whose URL is unreachable fails naming
    the URL; the config with the file as released converts it once, loads it
    strictly and evaluates."""
    from mmovss.testing.data import make_tiny_seg_dataset
    data = make_tiny_seg_dataset(tmp_path / 'data', num_train=0, num_val=2)
    config = tmp_path / 'configs' / 'san' / 'san_tiny_eval.py'
    config.parent.mkdir(parents=True)
    model = dict(SAN_MODEL, vocabulary=list(data['classes']))
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(64, 64), keep_ratio=False),
                dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
    dataset = dict(type='BaseSegDataset', data_root=data['data_root'],
                   metainfo=dict(classes=data['classes']), img_suffix='.jpg',
                   seg_map_suffix='.png', data_prefix=data['val'], pipeline=pipeline)
    base = [str(REPO / 'configs/_base_/default_runtime.py'),
            str(REPO / 'configs/_base_/schedules/inference_only.py')]
    config.write_text(
        f'_base_ = {base!r}\nmodel = {model!r}\n'
        f'test_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, '
        f"sampler=dict(type='DefaultSampler', shuffle=False), dataset={dataset!r})\n"
        "test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])\n"
        'val_cfg = None\n')
    (config.parent / 'metafile.yaml').write_text(
        f'Models:\n- Name: san_tiny_eval\n  Config: configs/san/san_tiny_eval.py\n'
        f'  Weights: {OFFLINE_URL}\n')
    monkeypatch.setattr(model_zoo, 'configs_root', lambda: str(tmp_path / 'configs'))
    tool = load_tool('test.py')
    cache = str(tmp_path / 'cache')
    with pytest.raises(ReleasedWeightsError, match=OFFLINE_URL):
        tool.main(['san_tiny_eval', '--weights-dir', cache, '--work-dir', str(tmp_path / 'w0')])
    tool.main([str(config), str(released['official']), '--weights-dir', cache,
               '--work-dir', str(tmp_path / 'w1')])
    assert len(convert_counter) == 1
    assert re.search(r'mIoU: [\d.]+', capsys.readouterr().out + _log_text(tmp_path / 'w1'))


def _log_text(work_dir) -> str:
    return '\n'.join(p.read_text() for p in Path(work_dir).rglob('*.log'))
