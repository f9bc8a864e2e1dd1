"""Tests of ``tools/analysis_tools/benchmark.py`` (speed/memory benchmark)
and of :mod:`mmovss.benchmarking`, the library behind it.

The tool runs in-process on the OVShapes tiny-CLIP config with random
weights at 64 x 64; the numbers are only checked for consistency (speed is
measured in docs/benchmarks.md, never asserted).
"""
import json
import os
import os.path as osp

import pytest
import torch

from mmovss import benchmarking as bench

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = osp.join(ROOT, 'configs', 'ovshapes',
                'dense-clip_tiny-clip_ovshapes.py')
FAST = ['--shape', '64', '64', '--repeat', '2', '--warmup', '1']


def _load_tool():
    from mmovss.testing.tools import load_tool
    return load_tool('analysis_tools/benchmark.py')


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
    assert mem['cpu_huge_pages'] in (True, False, None)
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
    row = bench.markdown_row(data)
    assert row.startswith('| ovshapes | `dense-clip_tiny-clip_ovshapes.py` |')
    assert f"`{data['command']}`" in row
    assert row.count('|') == bench.MARKDOWN_HEADER.splitlines()[0].count('|')
    report = bench.format_report(data)
    assert 'median' in report and 'cold' in report and 'peak RSS' in report


def test_vocabulary_by_name_and_dataset_default(tool):
    """--vocabulary takes benchmark names; the default is the dataset's."""
    assert bench.load_vocabulary('pascal_context_459').num_classes == 459
    assert bench.load_vocabulary('ADE20K150Dataset').num_classes == 150
    data = tool.main([TINY, *FAST[:3], '--repeat', '1', '--warmup', '0',
                      '--vocabulary', 'voc21'])
    assert data['vocabulary']['num_classes'] == 21
    assert data['vocabulary']['source'] == 'voc21'


def test_bf16_on_cpu_sets_the_inference_dtype(tool, monkeypatch):
    """--dtype bf16 runs on the CPU through the segmentor's precision switch."""
    # bf16 products faster than fp32 (the fall-back where they are slower is
    # tested in tests/test_flops.py with the same fake)
    monkeypatch.setattr(bench.peak, 'matmul_peak', lambda shape, dtype, device, **kwargs: dict(
        shape=list(shape), dtype=dtype, gflops=dict(bf16=2.0, fp32=1.0)[dtype],
        median_gflops=1.0, calls=1, repeat=1, threads=1))
    data = tool.main([TINY, *FAST[:3], '--repeat', '1', '--warmup', '0',
                      '--num-classes', '5', '--dtype', 'bf16'])
    assert data['dtype'] == 'bf16'
    assert 'inference_dtype' in data['precision']
    assert data['latency_s']['median'] > 0


def test_random_weights_replace_every_weight_source():
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
    bench.use_random_weights(cfg, notes)
    assert cfg['pretrained'] is None
    assert cfg['backbone']['pretrained'] is None
    assert cfg['backbone']['vfm']['pretrained'] is None
    assert cfg['backbone']['init_cfg'] is None
    assert cfg['head']['init_cfg'] == [dict(type='Normal')]
    assert bench.sam_marker(cfg) == 'vit_b'
    assert len(notes) == 3


def test_checkpoint_is_loaded_and_a_foreign_one_refused(tmp_path):
    """--checkpoint loads strictly, like tools/test.py."""
    cfg = bench.load_benchmark_config(TINY)
    model = bench.build_model(cfg, 'random', None, 'cpu', [], seed=3)
    state = {k: v for k, v in model.state_dict().items()}
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=state), good)
    notes = []
    loaded = bench.build_model(cfg, 'random', str(good), 'cpu', notes, seed=4)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    # the checkpoint fills every weight: no note of random weights beside it
    assert not any('random' in n for n in notes) and any(str(good) in n for n in notes)
    bad = tmp_path / 'bad.pth'
    torch.save(dict(state_dict={'backbone.nothing': torch.zeros(1)}), bad)
    with pytest.raises(bench.BenchmarkError, match='does not fit'):
        bench.build_model(cfg, 'random', str(bad), 'cpu', [])
    with pytest.raises(bench.BenchmarkError, match='does not exist'):
        bench.build_model(cfg, 'random', str(tmp_path / 'no.pth'), 'cpu', [])


@pytest.mark.parametrize('argv, message', [
    (['configs/ovshapes/no_such_config.py'], 'does not exist'),
    ([TINY, '--vocabulary', 'no_such_benchmark'], 'Unknown vocabulary'),
    ([TINY, '--dtype', 'fp16'], 'fp16 is not supported on CPU'),
    ([TINY, '--num-classes', '0'], '--num-classes must be >= 1'),
    ([TINY, '--threads', '0'], '--threads must be >= 1, got 0'),
    ([TINY, '--threads', '-1'], '--threads must be >= 1, got -1'),
    ([TINY, '--image-size', '32', '32'], '--image-size would be ignored'),
    ([osp.join(ROOT, 'configs', 'ovshapes',
               'ovseg_tiny-clip_mask-prompt-tuning_ovshapes-regions.py'), '--no-efficiency'],
     'MaskPromptTuner is not an open-vocabulary segmentor'),
])
def test_clear_errors(tool, argv, message):
    """Impossible requests fail early with a message saying why."""
    with pytest.raises(bench.BenchmarkError, match=message):
        tool.main(argv + FAST)


@pytest.mark.parametrize('size', [['--shape', '0', '64'], ['--shape', '64', '-8']])
def test_sizes_below_one_are_refused_before_the_build(tool, size, monkeypatch):
    """Before: a ValueError traceback from the backbone (image (0, 64) is
    smaller than one patch) after the build and the text encoding."""
    monkeypatch.setattr(bench.segmentor, 'build_model', None)  # never reached
    with pytest.raises(bench.BenchmarkError, match='--shape must be two sizes H W >= 1'):
        tool.main([TINY, *FAST, *size])


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_cuda_absent_is_a_clear_error(tool):
    with pytest.raises(bench.BenchmarkError, match='no CUDA device is available'):
        tool.main([TINY, '--device', 'cuda', *FAST])


def test_summarize_times():
    """Median, p90 and throughput of known times."""
    stats = bench.summarize_times([1.0, 2.0, 4.0])
    assert stats['median'] == 2.0
    assert stats['p90'] == pytest.approx(3.6)
    assert stats['per_s'] == pytest.approx(3 / 7)
    with pytest.raises(bench.BenchmarkError):
        bench.summarize_times([])


def test_contention_discounts_the_benchmarks_own_threads(monkeypatch):
    monkeypatch.setattr(os, 'cpu_count', lambda: 2)
    assert not bench.is_contended(2.4, own_threads=2)  # its own 2 threads
    assert bench.is_contended(3.2, own_threads=2)  # another busy process
    assert bench.is_contended(1.6, own_threads=1)
    assert not bench.is_contended(2.4, own_threads=8)  # at most one per core


def test_random_weights_keep_the_activation_of_the_dropped_tag(tmp_path):
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
    bench.use_random_weights(cfg)
    assert cfg['backbone'] == dict(type='OpenCLIPViT', model_name='ViT-B-16',
                                   pretrained=None, quick_gelu=True)
    assert 'quick_gelu' not in cfg['text_encoder']  # GELU tag: left alone
    assert cfg['text_encoder']['pretrained'] is None
    assert 'quick_gelu' not in cfg['decode_head']['clip']  # a file: unknown
    assert cfg['other']['quick_gelu'] is False  # set explicitly: kept
    convnext = dict(type='OpenCLIPConvNeXt', model_name='convnext_base',
                    pretrained='laion400m_s13b_b51k')
    bench.use_random_weights(convnext)
    assert convnext == dict(type='OpenCLIPConvNeXt', model_name='convnext_base',
                            pretrained=None)


def test_timed_call_returns_the_result_and_its_times():
    """One timed call through timed_runs, with what the work returned."""
    calls = []
    wall, cpu, out = bench.timed_call(lambda: calls.append(1) or 'done')
    assert out == 'done' and calls == [1]
    assert wall >= 0 and cpu >= 0


def test_unique_benchmark_classes_renames_repeated_names():
    """ADE-847 names 'pot' twice: the second gets its class index."""
    from mmovss.vocab import Vocabulary, load_benchmark_classes
    raw = list(load_benchmark_classes('ade20k_847'))
    classes = bench.unique_benchmark_classes('ade20k_847')
    assert len(classes) == len(raw) == 847
    names = [n.strip() for c in classes for n in c.split(',')]
    assert len(names) == len(set(names))
    renamed = [i for i, (a, b) in enumerate(zip(raw, classes)) if a != b]
    assert renamed and all(f'({i})' in classes[i] for i in renamed)
    assert Vocabulary(classes).num_classes == 847


@pytest.mark.parametrize('text, value', [
    ('3', 3), ('-2.5e-3', -2.5e-3), ('[1, 2]', [1, 2]), ('(224, 224)', (224, 224)),
    ('True', True), ('False', False), ('None', None), ("'single'", 'single'),
    ('single', 'single'), ("{'a': 1}", {'a': 1}),
])
def test_cfg_option_values_are_parsed_as_literals(text, value):
    assert bench.parse_literal(text) == value
    assert type(bench.parse_literal(text)) is type(value)


def test_cfg_option_code_is_kept_as_text_and_never_run(tmp_path):
    """A value that is code (``__import__`` ...) stays a string: nothing runs."""
    marker = tmp_path / 'executed'
    code = f"__import__('os').system('touch {marker}')"
    assert bench.parse_literal(code) == code
    options = bench.parse_key_values([f'model.x={code}', 'model.y=(1, 2)'])
    assert options == {'model.x': code, 'model.y': (1, 2)}
    assert not marker.exists()
    with pytest.raises(ValueError, match='--cfg-options.*key=value'):
        bench.parse_key_values(['model.x'])


def _compare_tool():
    from mmovss.testing.tools import load_tool
    return load_tool('analysis_tools/compare_reference_training_free.py')


def test_compare_reference_tool_reads_cfg_options_as_literals(tmp_path):
    """compare_reference_training_free.py --cfg-options: literals, never eval."""
    from mmovss.benchmarking.published_reference import our_config
    marker = tmp_path / 'executed'
    code = f"__import__('os').system('touch {marker}')"
    compare = _compare_tool()
    args = compare.parse_args([
        'naclip', str(tmp_path), '--weights', str(tmp_path / 'w.pt'),
        '--cfg-options', f'model.decode_head.logit_scale={code}',
        'model.test_cfg.crop_batch_size=4', 'model.test_cfg.stride=(96, 96)',
        'model.backbone.extra=[1, 2]', 'model.test_cfg.flag=True'])
    cfg = our_config(args.method, args.reference, args.weights,
                     args.templates, args.pamr, args.cfg_options)
    assert not marker.exists()
    assert cfg.model.decode_head.logit_scale == code
    assert cfg.model.test_cfg.crop_batch_size == 4
    assert tuple(cfg.model.test_cfg.stride) == (96, 96)
    assert list(cfg.model.backbone.extra) == [1, 2]
    assert cfg.model.test_cfg.flag is True
    assert cfg.model.backbone.pretrained == str(tmp_path / 'w.pt')
    assert cfg.model.vocabulary == osp.join(str(tmp_path), 'configs',
                                            'cls_context60.txt')


def test_compare_reference_tool_bf16_option(tmp_path):
    """--dtype bf16 sets our inference_dtype and switches the verdict from
    the parity tolerances to the agreement rule (labels >= 99.5%)."""
    from mmovss.benchmarking.published_reference import our_config
    compare = _compare_tool()
    args = compare.parse_args(['naclip', str(tmp_path), '--dtype', 'bf16'])
    cfg = our_config(args.method, args.reference, args.weights,
                     args.templates, args.pamr, compare.our_options(args))
    assert cfg.model.test_cfg.inference_dtype == 'bf16'
    fp32 = compare.parse_args(['naclip', str(tmp_path)])
    assert 'inference_dtype' not in str(compare.our_options(fp32))
    verdict = compare.agreement_verdict
    assert verdict('fp32', 5e-5, 0.9995, 1e-4)[0]
    assert not verdict('fp32', 6e-4, 1.0, 1e-4)[0]  # logits judged in fp32
    assert not verdict('fp32', 5e-5, 0.998, 1e-4)[0]
    assert verdict('bf16', 6e-4, 0.996, 1e-4)[0]  # bf16: labels only
    assert not verdict('bf16', 0.0, 0.994, 1e-4)[0]
    assert '99.5%' in verdict('bf16', 0.0, 1.0, 1e-4)[1]


def test_compare_reference_tool_cast_text_keeps_the_reference_float32(tmp_path, capsys):
    """--cast-text: our text tower in bf16, the reference's embeddings from a
    float32 build of the same config (random tiny CLIP, same seed)."""
    from mmovss.benchmarking.published_reference import build_ours, our_config
    from mmovss.testing.clip import tiny_clip_cfg
    compare = _compare_tool()
    with pytest.raises(SystemExit):
        compare.parse_args(['naclip', str(tmp_path), '--cast-text'])
    assert 'pass --dtype bf16' in capsys.readouterr().err
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'cls_context60.txt').write_text('sky\ncat, kitty\ntraffic light\n')
    tiny = tiny_clip_cfg()
    options = ['--cfg-options', *[f'model.{tower}.{key}={value!r}' for tower in
                                  ('backbone', 'text_encoder') for key, value in
                                  (('model_name', None), ('model_cfg', tiny),
                                   ('pretrained', None))],
               'model.text_encoder.cache_dir=None',
               f"model.decode_head.in_channels={tiny['embed_dim']}"]
    args = compare.parse_args(['naclip', str(tmp_path), '--dtype', 'bf16', '--cast-text',
                               '--templates', 'single', *options])
    assert 'model.test_cfg.cast_text_encoder=True' in compare.our_options(args)
    torch.manual_seed(0)
    ours = build_ours(our_config(args.method, args.reference, args.weights, args.templates,
                                 args.pamr, compare.our_options(args)))
    with torch.no_grad():
        ours_embeds = ours.class_embeddings()
    torch.manual_seed(0)
    given = compare.reference_text_embeddings(args, ours_embeds)
    torch.manual_seed(0)
    fp32 = build_ours(our_config(args.method, args.reference, args.weights, args.templates,
                                 args.pamr, args.cfg_options))
    with torch.no_grad():
        want = fp32.class_embeddings()
    assert given.embeds.dtype == torch.float32 and torch.equal(given.embeds, want.embeds)
    assert given.vocabulary.names == ours_embeds.vocabulary.names
    if ours.inference_precision['run'] == 'bf16':  # this CPU runs bf16 (no fallback)
        assert not torch.equal(ours_embeds.embeds, given.embeds)
        torch.testing.assert_close(ours_embeds.embeds, given.embeds, atol=0.05, rtol=0)
    plain = compare.parse_args(['naclip', str(tmp_path), '--dtype', 'bf16'])
    assert compare.reference_text_embeddings(plain, ours_embeds) is ours_embeds


def test_mmseg_text_encoder_gets_our_weights():
    """benchmark_text_encoder.py's mmseg encoder (weights mapped by the SAN
    checkpoint converter) embeds names as ours does."""
    from mmovss.benchmarking.mmseg_reference import build_mmseg_text_encoder
    from mmovss.models.text_encoders import OpenCLIPTextEncoder
    from mmovss.testing.clip import tiny_clip_cfg
    from mmovss.vocab import get_templates
    torch.manual_seed(0)
    ours = OpenCLIPTextEncoder(model_name=None, model_cfg=tiny_clip_cfg('vit'),
                               quick_gelu=True, templates='vild', cache_dir=None)
    theirs = build_mmseg_text_encoder(ours, get_templates('vild'))
    names = ['cat', 'traffic light']
    with torch.no_grad():
        reference = theirs.template_encode(names)
        embeds = ours.embed_names(names)
    torch.testing.assert_close(embeds, reference, rtol=1e-4, atol=1e-5)


def test_checkpoint_loader_is_the_one_of_tools_test(tmp_path, monkeypatch):
    """The benchmark loads checkpoints through mmovss.runtime's strict loader."""
    import mmovss.runtime as runtime
    seen = []
    monkeypatch.setattr(runtime, 'load_model_checkpoint_strictly',
                        lambda model, path: seen.append(path))
    bench.load_checkpoint_strictly(torch.nn.Linear(1, 1), 'some.pth')
    assert seen == ['some.pth']


def test_benchmark_flag_switches_the_config_with_its_protocol(tool):
    """--benchmark KEY measures on that benchmark (mmovss.protocols), and
    --cfg-options apply over it, as in tools/test.py."""
    fast = [TINY, *FAST[:3], '--repeat', '1', '--warmup', '0']
    data = tool.main(fast + ['--benchmark', 'voc21'])
    assert data['benchmark'] == 'voc21'
    assert data['vocabulary']['num_classes'] == 21  # VOC's classes, the dataset's
    assert '--benchmark voc21' in data['command']
    assert bench.markdown_row(data).startswith(
        '| ovshapes | `dense-clip_tiny-clip_ovshapes.py --benchmark voc21` |')
    data = tool.main(fast + ['--benchmark', 'voc21', '--cfg-options',
                             'model.vocabulary=[cat,dog,sky]'])
    assert data['vocabulary']['num_classes'] == 3
    with pytest.raises(SystemExit):  # argparse: not a benchmark key
        tool.parse_args([TINY, '--benchmark', 'no_such_benchmark'])
    with pytest.raises(bench.BenchmarkError, match='no_such_benchmark'):
        bench.benchmark_segmentor(TINY, benchmark='no_such_benchmark', shape=(64, 64))


def _thp_available() -> bool:
    try:
        with open('/sys/kernel/mm/transparent_hugepage/enabled') as f:
            return '[never]' not in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _thp_available(), reason='no transparent huge pages here')
def test_huge_page_probe_tells_both_settings_apart():
    """The probe counts page faults of a fresh 64 MiB tensor: in a process
    started with THP_MEM_ALLOC_ENABLE=1 about 32, with 0 about 16384."""
    import subprocess
    import sys
    code = ('import importlib.util, sys; '
            f'spec = importlib.util.spec_from_file_location("m", {bench.memory.__file__!r}); '
            'm = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); '
            'print(m.huge_page_allocations())')
    seen = {}
    for value in ('0', '1'):
        env = dict(os.environ, THP_MEM_ALLOC_ENABLE=value)
        proc = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        seen[value] = proc.stdout.split()[-1]
    assert seen == {'0': 'False', '1': 'True'}


def test_tools_enable_huge_pages_before_torch_is_imported():
    """tools/train.py, tools/test.py, the benchmark, the demo and the web UI set
    THP_MEM_ALLOC_ENABLE=1 (PyTorch reads it once, at its first CPU allocation)
    before anything imports torch, and keep a value the user set."""
    import subprocess
    import sys
    tools = ['tools/train.py', 'tools/test.py', 'tools/analysis_tools/benchmark.py',
             'tools/demo.py', 'tools/webui.py']
    code = (
        'import os, re, sys\n'
        'for path in sys.argv[1:]:\n'
        '    src = open(path).read()\n'
        '    header = src[:re.search(r"^(import|from) mmovss", src, re.M).start()]\n'
        '    for preset in (None, "0"):\n'
        '        os.environ.pop("THP_MEM_ALLOC_ENABLE", None)\n'
        '        if preset is not None:\n'
        '            os.environ["THP_MEM_ALLOC_ENABLE"] = preset\n'
        '        exec(compile(header, path, "exec"), {"__file__": os.path.abspath(path)})\n'
        '        value = os.environ.get("THP_MEM_ALLOC_ENABLE")\n'
        '        print(path, preset, value, "torch" in sys.modules)\n')
    proc = subprocess.run([sys.executable, '-c', code, *tools], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.split('\n')
    for path in tools:
        assert f'{path} None 1 False' in lines and f'{path} 0 0 False' in lines, proc.stdout
