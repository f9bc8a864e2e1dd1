"""Tests of ``tools/analysis_tools/benchmark.py`` (speed/memory benchmark).

The tool runs in-process on the OVShapes tiny-CLIP config with random
weights at 64 x 64; the numbers are only checked for consistency (speed is
measured in docs/benchmarks.md, never asserted).
"""
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py')
TINY = osp.join(ROOT, 'configs', 'ovshapes',
                'dense_clip_tiny-clip_ovshapes.py')
FAST = ['--shape', '64', '64', '--repeat', '2', '--warmup', '1']


def _load_tool():
    spec = importlib.util.spec_from_file_location('mmovss_benchmark_tool',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


@pytest.fixture(scope='module')
def result(tool, tmp_path_factory):
    """One run on the tiny config, written with --json and --markdown."""
    path = tmp_path_factory.mktemp('bench') / 'result.json'
    returned = tool.main([TINY, *FAST, '--num-classes', '200', '--json',
                          str(path), '--markdown'])
    with open(path) as f:
        written = json.load(f)
    return returned, written


def test_json_has_sane_latency_memory_and_text_cost(result):
    """Every reported field is present and consistent."""
    returned, data = result
    assert data['config'] == returned['config']
    assert data['weights'] == 'random'
    assert data['device'] == 'cpu' and data['dtype'] == 'fp32'
    assert data['vocabulary']['num_classes'] == 200
    assert data['image']['net_shape'] == [64, 64]
    assert data['image']['pred_shape'] == [64, 64]
    lat = data['latency_s']
    assert len(lat['runs']) == 2 and all(t > 0 for t in lat['runs'])
    assert 0 < lat['min'] <= lat['median'] <= lat['p90'] <= lat['max']
    assert data['images_per_s'] == pytest.approx(2 / sum(lat['runs']))
    mem = data['memory']
    assert mem['peak_rss_mb'] > 0 and mem['rss_model_mb'] > 0
    assert mem['peak_rss_above_model_mb'] == pytest.approx(
        mem['peak_rss_mb'] - mem['rss_model_mb'])
    text = data['text']
    assert text['cold_s'] > 0 and text['warm_s'] > 0
    assert text['warm_s'] < text['cold_s']
    assert text['warm_disk_s'] < text['cold_s']
    # 200 names x the config's 3 prompt templates
    assert text['prompts'] == 600 and text['templates'] == 3
    assert data['command'].startswith(
        'python tools/analysis_tools/benchmark.py ')
    assert '--num-classes 200' in data['command']
    assert '--json' not in data['command']  # output options left out
    assert '--markdown' not in data['command']
    assert 0 < text['cold_cpu_s']


def test_markdown_row_and_report(tool, result, capsys):
    """--markdown prints a table row with the exact command."""
    _, data = result
    row = tool.markdown_row(data)
    assert row.startswith('| ovshapes | `dense_clip_tiny-clip_ovshapes.py` |')
    assert f"`{data['command']}`" in row
    assert row.count('|') == tool.MARKDOWN_HEADER.splitlines()[0].count('|')
    report = tool.format_report(data)
    assert 'median' in report and 'cold' in report and 'peak RSS' in report


def test_vocabulary_by_name_and_dataset_default(tool):
    """--vocabulary takes benchmark names; the default is the dataset's."""
    assert tool.load_vocabulary('pascal_context_459').num_classes == 459
    assert tool.load_vocabulary('ADE20K150Dataset').num_classes == 150
    data = tool.main([TINY, *FAST[:3], '--repeat', '1', '--warmup', '0',
                      '--vocabulary', 'voc21'])
    assert data['vocabulary']['num_classes'] == 21
    assert data['vocabulary']['source'] == 'voc21'


def test_bf16_on_cpu_sets_the_inference_dtype(tool):
    """--dtype bf16 runs on the CPU through the segmentor's precision switch."""
    data = tool.main([TINY, *FAST[:3], '--repeat', '1', '--warmup', '0',
                      '--num-classes', '5', '--dtype', 'bf16'])
    assert data['dtype'] == 'bf16'
    assert 'inference_dtype' in data['precision']
    assert data['latency_s']['median'] > 0


def test_random_weights_replace_every_weight_source(tool):
    """Tags, files, timm flags, Pretrained init_cfgs and SAM are replaced."""
    cfg = dict(
        type='X', pretrained='openai',
        backbone=dict(type='B', pretrained='/no/such/file.pt',
                      vfm=dict(pretrained=True),
                      init_cfg=dict(type='Pretrained', checkpoint='x')),
        head=dict(type='H', init_cfg=[dict(type='Normal'),
                                      dict(type='Pretrained', checkpoint='y')],
                  gen=dict(type='SAMMaskGenerator', model_type='vit_b',
                           checkpoint=None)))
    notes = []
    tool.use_random_weights(cfg, notes)
    assert cfg['pretrained'] is None
    assert cfg['backbone']['pretrained'] is None
    assert cfg['backbone']['vfm']['pretrained'] is None
    assert cfg['backbone']['init_cfg'] is None
    assert cfg['head']['init_cfg'] == [dict(type='Normal')]
    assert tool._sam_marker(cfg) == 'vit_b'
    assert len(notes) == 3


def test_checkpoint_is_loaded_and_a_foreign_one_refused(tool, tmp_path):
    """--checkpoint loads strictly, like tools/test.py."""
    cfg = tool.load_benchmark_config(TINY)
    model = tool.build_model(cfg, 'random', None, 'cpu', [], seed=3)
    state = {k: v for k, v in model.state_dict().items()}
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=state), good)
    loaded = tool.build_model(cfg, 'random', str(good), 'cpu', [], seed=4)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={'backbone.nothing': torch.zeros(1)}), bad)
    with pytest.raises(tool.BenchmarkError, match='does not fit'):
        tool.build_model(cfg, 'random', str(bad), 'cpu', [])
    with pytest.raises(tool.BenchmarkError, match='does not exist'):
        tool.build_model(cfg, 'random', str(tmp_path / 'no.pth'), 'cpu', [])


@pytest.mark.parametrize('argv, message', [
    (['configs/ovshapes/no_such_config.py'], 'does not exist'),
    ([TINY, '--vocabulary', 'no_such_benchmark'], 'Unknown vocabulary'),
    ([TINY, '--dtype', 'fp16'], 'fp16 is not supported on CPU'),
    ([TINY, '--num-classes', '0'], '--num-classes must be >= 1'),
])
def test_clear_errors(tool, argv, message):
    """Impossible requests fail early with a message saying why."""
    with pytest.raises(tool.BenchmarkError, match=message):
        tool.main(argv + FAST)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_absent_is_a_clear_error(tool):
    with pytest.raises(tool.BenchmarkError, match='CUDA is not available'):
        tool.main([TINY, '--device', 'cuda', *FAST])


def test_summarize_times(tool):
    """Median, p90 and throughput of known times."""
    stats = tool.summarize_times([1.0, 2.0, 4.0])
    assert stats['median'] == 2.0
    assert stats['p90'] == pytest.approx(3.6)
    assert stats['per_s'] == pytest.approx(3 / 7)
    with pytest.raises(tool.BenchmarkError):
        tool.summarize_times([])


def test_contention_discounts_the_benchmarks_own_threads(tool, monkeypatch):
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    assert not tool.is_contended(2.4, own_threads=2)  # its own 2 threads
    assert tool.is_contended(3.2, own_threads=2)  # another busy process
    assert tool.is_contended(1.6, own_threads=1)
    assert not tool.is_contended(2.4, own_threads=8)  # at most one per core


def test_random_weights_keep_the_activation_of_the_dropped_tag(tool, tmp_path):
    """OpenAI towers use QuickGELU: the random stand-in must too (and only
    towers that accept the option get it: ConvNeXt towers have none)."""
    local = tmp_path / 'clip.pt'
    local.write_bytes(b'')
    cfg = dict(backbone=dict(type='OpenCLIPViT', model_name='ViT-B-16',
                             pretrained='openai'),
               text_encoder=dict(type='OpenCLIPTextEncoder', model_name='ViT-B-16',
                                 pretrained='laion2b_s34b_b88k'),
               decode_head=dict(clip=dict(model_name='ViT-B-16', pretrained=str(local))),
               other=dict(model_name='ViT-B-16', pretrained='openai', quick_gelu=False))
    tool.use_random_weights(cfg)
    assert cfg['backbone'] == dict(type='OpenCLIPViT', model_name='ViT-B-16',
                                   pretrained=None, quick_gelu=True)
    assert 'quick_gelu' not in cfg['text_encoder']  # GELU tag: left alone
    assert cfg['text_encoder']['pretrained'] is None
    assert 'quick_gelu' not in cfg['decode_head']['clip']  # a file: unknown
    assert cfg['other']['quick_gelu'] is False  # set explicitly: kept
    convnext = dict(type='OpenCLIPConvNeXt', model_name='convnext_base',
                    pretrained='laion400m_s13b_b51k')
    tool.use_random_weights(convnext)
    assert convnext == dict(type='OpenCLIPConvNeXt', model_name='convnext_base',
                            pretrained=None)
