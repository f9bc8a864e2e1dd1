"""Tests of the efficiency figures of the benchmark (:mod:`mmovss.benchmarking`
``flops`` and ``peak``): the FLOP counter against a hand count of a tiny ViT,
the matrix peak, the efficiency fields of the report, and the CPU bf16
fall-back decision (with faked peaks: the real ones depend on the machine).
"""
import os.path as osp

import pytest
import torch
from torch import nn

from mmovss import benchmarking as bench
from mmovss.benchmarking import peak as peak_module
from mmovss.testing.tools import load_tool

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = osp.join(ROOT, 'configs', 'ovshapes', 'dense-clip_tiny-clip_ovshapes.py')
FAST = [TINY, '--shape', '64', '64', '--repeat', '1', '--warmup', '0',
        '--num-classes', '5']


class TinyViT(nn.Module):
    """A ViT written out: patch conv, class token, pre-norm blocks with
    explicit attention products (``q @ k^T``, ``attn @ v``) and an MLP."""

    def __init__(self, patch=8, dim=16, depth=2, heads=2, ratio=4):
        super().__init__()
        self.heads = heads
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(nn.ModuleDict(dict(
            norm1=nn.LayerNorm(dim), qkv=nn.Linear(dim, 3 * dim),
            proj=nn.Linear(dim, dim), norm2=nn.LayerNorm(dim),
            fc1=nn.Linear(dim, ratio * dim), fc2=nn.Linear(ratio * dim, dim)))
            for _ in range(depth))

    def forward(self, images):
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        b, _, c = x.shape
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], 1)
        length, hd = x.shape[1], c // self.heads
        for blk in self.blocks:
            qkv = blk['qkv'](blk['norm1'](x)).reshape(b, length, 3, self.heads, hd)
            q, k, v = qkv.permute(2, 0, 3, 1, 4)
            attn = (q @ k.transpose(-2, -1) * hd**-0.5).softmax(-1)
            x = x + blk['proj']((attn @ v).transpose(1, 2).reshape(b, length, c))
            x = x + blk['fc2'](nn.functional.gelu(blk['fc1'](blk['norm2'](x))))
        return x


class TinySegmentor(nn.Module):
    """A backbone (the image encoder) and a head outside it."""

    def __init__(self):
        super().__init__()
        self.backbone = TinyViT()
        self.head = nn.Linear(16, 5)

    def forward(self, images):
        return self.head(self.backbone(images))


def hand_count_vit(b=2, size=32, patch=8, dim=16, depth=2, heads=2, ratio=4):
    """2 * M * K * N per product; the conv as a product over its patches.

    Counted: the patch convolution, per block the qkv, proj, fc1, fc2 linear
    layers and the two attention products. Not counted: biases, class token,
    norms, softmax, GELU, residual additions (FlopCounterMode has no formula
    for them: element-wise work).
    """
    patches = (size // patch)**2
    length, hd = patches + 1, dim // heads
    conv = 2 * b * patches * dim * 3 * patch * patch
    linear = 2 * b * length * dim * (3 * dim + dim + ratio * dim + ratio * dim)
    attention = 2 * (2 * b * heads * length * hd * length)
    return conv + depth * (linear + attention)


def test_flop_counter_agrees_with_a_hand_count_of_a_tiny_vit():
    torch.manual_seed(0)
    model = TinySegmentor().eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        count = bench.count_flops(lambda: model(images), bench.encoder_modules(model))
    vit = hand_count_vit()
    head = 2 * 2 * 17 * 16 * 5
    assert count['encoder'] == vit
    assert count['total'] == vit + head
    assert count['encoder_calls'] == 1
    assert sum(count['by_op'].values()) == count['total']
    assert count['by_op']['aten.convolution'] == 2 * 2 * 16 * 16 * 3 * 64
    # the linear layers' products and their shapes (B * L tokens as M)
    dominant = count['dominant_matmul']
    assert dominant['dtype'] == 'float32'
    assert dominant['shape'] in ([34, 16, 64], [34, 64, 16])  # fc1 / fc2 tie
    assert dominant['flops'] == 2 * 2 * 34 * 16 * 64
    linear_flops = 2 * (2 * 34 * 16 * (3 * 16 + 16 + 64 + 64)) + 2 * 34 * 16 * 5
    assert dominant['share'] == pytest.approx(dominant['flops'] / linear_flops)


def test_encoder_count_sums_every_call_and_nested_calls_once():
    """Sliding windows call the backbone several times; a neck called from
    inside the backbone is not counted twice."""
    model = TinySegmentor().eval()
    model.neck = model.backbone.patch_embed  # called inside the backbone
    images = torch.randn(1, 3, 32, 32)

    def windows():
        for _ in range(3):
            model(images)

    with torch.no_grad():
        count = bench.count_flops(windows, bench.encoder_modules(model))
    assert count['encoder_calls'] == 3
    assert count['encoder'] == 3 * hand_count_vit(b=1)
    timer = bench.EncoderTimer(bench.encoder_modules(model))
    with torch.no_grad():
        model(images)
    timer.remove()
    assert timer.calls == 1 and timer.seconds > 0 and timer.cpu_seconds > 0
    before = timer.seconds, timer.cpu_seconds
    model(images)  # hooks removed: no more time
    assert (timer.seconds, timer.cpu_seconds) == before


def test_matmul_peak_measures_the_shape_in_its_precision():
    result = bench.matmul_peak((32, 16, 8), 'fp32', repeat=2, min_run_s=0.001)
    assert result['shape'] == [32, 16, 8] and result['dtype'] == 'fp32'
    assert result['calls'] >= 1 and result['threads'] == torch.get_num_threads()
    assert 0 < result['median_gflops'] <= result['gflops']
    assert result['cpu_gflops'] > 0


def test_matmul_peak_on_cpu_time_is_not_lowered_by_a_lost_core(monkeypatch):
    """A run that waits for its core (3 s of wall time, 1 s of CPU time)
    gives a wall-clock peak a third of the peak on CPU time."""
    def shared_core(fn, repeat, warmup=0, device='cpu', cpu_times=None):
        if cpu_times is not None:
            cpu_times.extend([1.0] * repeat)
        return [3.0] * repeat

    monkeypatch.setattr(peak_module, 'timed_runs', shared_core)
    result = bench.matmul_peak((256, 128, 64), 'fp32', repeat=3)
    flops = 2 * 256 * 128 * 64 * result['calls']
    assert result['gflops'] == pytest.approx(flops / 3.0 / 1e9)
    assert result['cpu_gflops'] == pytest.approx(flops / 1.0 / 1e9)


def test_matmul_peaks_interleave_and_keep_the_best_round():
    seen = []
    rates = iter([5.0, 9.0, 7.0, 3.0])

    def fake(shape, dtype, device):
        seen.append(dtype)
        return dict(shape=list(shape), dtype=dtype, gflops=next(rates))

    best = bench.matmul_peaks((4, 4, 4), ('bf16', 'fp32'), rounds=2, measure=fake)
    assert seen == ['bf16', 'fp32', 'bf16', 'fp32']
    assert best['bf16']['gflops'] == 7.0 and best['fp32']['gflops'] == 9.0
    assert best['bf16']['rounds'] == 2
    # the best round on CPU time is kept even when another round is faster
    # in wall time
    rounds = iter([(9.0, 4.0), (5.0, 8.0)])

    def fake_cpu(shape, dtype, device):
        wall, cpu = next(rounds)
        return dict(shape=list(shape), dtype=dtype, gflops=wall, cpu_gflops=cpu)

    best = bench.matmul_peaks((4, 4, 4), ('fp32',), rounds=2, measure=fake_cpu)
    assert best['fp32']['gflops'] == 9.0 and best['fp32']['cpu_gflops'] == 8.0


def test_efficiency_is_flops_over_time_and_its_fraction_of_peak():
    eff = bench.efficiency(6e9, 2.0, peak_gflops=12.0)
    assert eff == dict(gflop=6.0, seconds=2.0, achieved_gflops=3.0, fraction=0.25)
    assert bench.efficiency(None, 2.0, 12.0) is None
    assert bench.bf16_falls_back(10.0, 20.0) and not bench.bf16_falls_back(20.0, 10.0)


@pytest.fixture(scope='module')
def tool():
    return load_tool('analysis_tools/benchmark.py')


def _fake_peaks(monkeypatch, rates):
    """Replaces the measured matrix peak by fixed rates per precision."""
    def fake(shape, dtype, device, **kwargs):
        return dict(shape=list(shape), dtype=dtype, gflops=rates[dtype],
                    median_gflops=rates[dtype], cpu_gflops=rates[dtype] / 2,
                    calls=1, repeat=5, threads=torch.get_num_threads())
    monkeypatch.setattr(peak_module, 'matmul_peak', fake)


def test_report_has_the_efficiency_fields(tool, monkeypatch, capsys):
    """FLOPs, peak, achieved FLOP/s = FLOPs / median latency and fraction =
    achieved / peak, for the predict and the image encoder."""
    _fake_peaks(monkeypatch, dict(fp32=50.0))
    data = tool.main(FAST + ['--repeat', '2', '--markdown'])
    eff = data['efficiency']
    assert eff['peak']['gflops'] == 50.0 and eff['peak']['dtype'] == 'fp32'
    predict, encoder = eff['predict'], eff['encoder']
    assert predict['seconds'] == data['latency_s']['median']
    assert 0 < encoder['gflop'] < predict['gflop']
    assert 0 < encoder['seconds'] <= predict['seconds']
    for part in (predict, encoder):
        assert part['achieved_gflops'] == pytest.approx(part['gflop'] / part['seconds'])
        assert part['fraction'] == pytest.approx(part['achieved_gflops'] / 50.0)
    assert eff['dominant_matmul']['shape'] == eff['peak']['shape']
    # the same on CPU time, against the peak on CPU time (25 here)
    assert eff['predict_cpu']['seconds'] == data['cpu_s_per_image']
    for key, part in (('predict_cpu', predict), ('encoder_cpu', encoder)):
        cpu = eff[key]
        assert cpu['gflop'] == part['gflop'] and cpu['seconds'] > 0
        assert cpu['fraction'] == pytest.approx(cpu['gflop'] / cpu['seconds'] / 25.0)
    assert eff['encoder_cpu']['seconds'] <= eff['predict_cpu']['seconds']
    report = bench.format_report(data)
    assert f"predict {eff['predict_cpu']['fraction']:.1%}" in report
    assert 'matrix peak' in report and 'image encoder' in report
    assert f"{predict['fraction']:.1%} of peak" in report
    row = bench.efficiency_row(data)
    assert row.count('|') == bench.EFFICIENCY_HEADER.splitlines()[0].count('|')
    assert f"{encoder['fraction']:.1%}" in row and data['device_name'] in row
    assert '50.0 / 25.0 (' in row  # both peaks
    assert (f"{eff['predict_cpu']['fraction']:.1%} / "
            f"{eff['encoder_cpu']['fraction']:.1%}") in row
    out = capsys.readouterr().out
    assert bench.EFFICIENCY_HEADER in out and row in out


def test_peak_beside_each_run_pairs_every_run_with_its_own_phase(tool, monkeypatch):
    """A machine whose peak drifts: the best-of peak (3 rounds at 80) and
    the peaks measured right after each timed run (40, 20, 10); each run's
    fraction is taken against its own peak and the median reported."""
    rates = iter([80.0, 80.0, 80.0, 40.0, 20.0, 10.0])
    calls = []

    def drifting(shape, dtype, device, **kwargs):
        calls.append(kwargs)
        rate = next(rates)
        return dict(shape=list(shape), dtype=dtype, gflops=rate,
                    median_gflops=rate, cpu_gflops=rate / 2, calls=1,
                    repeat=5, threads=torch.get_num_threads())
    monkeypatch.setattr(peak_module, 'matmul_peak', drifting)
    data = tool.main(FAST[:-4] + ['--repeat', '3', '--warmup', '1',
                                  '--num-classes', '5'])
    eff = data['efficiency']
    assert eff['peak']['gflops'] == 80.0 and len(calls) == 6
    paired = eff['paired']
    assert paired['peaks'] == dict(min=10.0, max=40.0, runs=3)
    flops = eff['predict']['gflop']
    assert eff['predict']['fraction'] == pytest.approx(
        flops / data['latency_s']['median'] / 80.0)
    # every paired peak is below the best-of one: each run's fraction rises
    assert paired['predict'] > eff['predict']['fraction']
    assert paired['encoder'] is not None and paired['predict_cpu'] is not None
    report = bench.format_report(data)
    assert 'beside each run' in report and '10.0-40.0 GFLOP/s over 3 runs' in report
    assert f"predict {paired['predict']:.1%}" in report


def test_paired_fractions_are_each_run_against_its_own_peak():
    from mmovss.benchmarking.segmentor import _efficiency_result
    count = dict(total=8e9, encoder=4e9, encoder_calls=1,
                 dominant_matmul=None, by_op={})
    peak = dict(gflops=100.0, cpu_gflops=100.0, shape=[1, 1, 1], dtype='fp32')
    paired_peaks = [dict(gflops=100.0, cpu_gflops=100.0),
                    dict(gflops=40.0, cpu_gflops=50.0),
                    dict(gflops=20.0, cpu_gflops=20.0)]
    times, encoder = [0.1, 0.4, 0.8], [0.05, 0.2, 0.4]
    eff = _efficiency_result(count, peak, times, encoder, times, encoder,
                             paired_peaks)
    # runs: 80/100, 20/40, 10/20 -> 0.8, 0.5, 0.5; CPU: 0.8, 0.4, 0.5
    assert eff['paired']['predict'] == pytest.approx(0.5)
    assert eff['paired']['encoder'] == pytest.approx(0.5)
    assert eff['paired']['predict_cpu'] == pytest.approx(0.5)
    assert eff['predict']['fraction'] == pytest.approx(8 / 0.4 / 100)  # median 0.4 s
    assert _efficiency_result(count, peak, times, encoder, times, encoder)['paired'] is None


def test_no_efficiency_skips_the_count(tool):
    data = tool.main(FAST + ['--no-efficiency'])
    assert data['efficiency'] is None and data['dtype_check'] is None
    assert 'matrix peak' not in bench.format_report(data)
    with pytest.raises(ValueError, match='--no-efficiency'):
        bench.efficiency_row(data)


def test_bf16_falls_back_to_fp32_where_slower_or_is_refused(tool, monkeypatch):
    _fake_peaks(monkeypatch, dict(fp32=40.0, bf16=10.0))
    data = tool.main(FAST + ['--dtype', 'bf16'])
    assert data['dtype_requested'] == 'bf16'
    assert data['dtype'] == 'fp32' and data['precision'] == 'fp32'
    check = data['dtype_check']
    assert check['kept'] is False and check['shape'] == [1024, 768, 768]
    assert check['bf16_gflops'] == 10.0 and check['fp32_gflops'] == 40.0
    assert any('fell back to fp32' in note for note in data['notes'])
    assert 'FELL BACK TO FP32' in bench.format_report(data)
    assert data['efficiency']['peak']['dtype'] == 'fp32'
    with pytest.raises(bench.BenchmarkError, match='refused.*--strict-dtype'):
        tool.main(FAST + ['--dtype', 'bf16', '--strict-dtype'])


def test_bf16_is_kept_where_faster(tool, monkeypatch):
    _fake_peaks(monkeypatch, dict(fp32=40.0, bf16=80.0))
    data = tool.main(FAST + ['--dtype', 'bf16', '--strict-dtype'])
    assert data['dtype'] == 'bf16' and data['dtype_check']['kept'] is True
    assert data['efficiency']['peak'] == dict(
        shape=data['efficiency']['dominant_matmul']['shape'], dtype='bf16',
        gflops=80.0, median_gflops=80.0, cpu_gflops=40.0, calls=1, repeat=5,
        threads=torch.get_num_threads(), rounds=3)
    assert not any('fell back' in note for note in data['notes'])


def test_attention_kernels_are_counted_as_their_products():
    """The CPU attention kernel and nn.MultiheadAttention's fused inference
    path, which PyTorch's counter leaves at zero, count as their products."""
    q, k, v = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 7, 8), torch.randn(2, 2, 7, 8)
    with torch.no_grad():
        count = bench.count_flops(lambda: nn.functional.scaled_dot_product_attention(q, k, v))
    assert count['total'] == 2 * (2 * 2 * 2 * 5 * 7 * 8)  # q @ k^T, attn @ v
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        count = bench.count_flops(lambda: mha(x, x, x, need_weights=False))
    projections = 4 * (2 * 2 * 5 * 16 * 16)  # q, k, v, out: 10 tokens, 16 x 16
    assert count['total'] == projections + 2 * (2 * 2 * 5 * 5 * 16)
    flops = bench.flops._attention_flops((3, 1, 4, 6), (3, 1, 9, 6), (3, 1, 9, 2))
    assert flops == 2 * 3 * 4 * 9 * (6 + 2)


def test_fused_layers_and_vector_products_are_counted_by_hand():
    """Kernels PyTorch's counter leaves at zero (before: 0 FLOPs for a whole
    nn.TransformerEncoder in eval mode, its fused inference path)."""
    dim, hidden = 8, 16
    encoder = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(dim, 2, hidden, batch_first=True), 2,
        enable_nested_tensor=False).eval()
    x = torch.randn(2, 5, dim)

    def layer(lengths):  # projections, MLP, then attention per sequence
        products = 2 * sum(lengths) * dim * (4 * dim + 2 * hidden)
        return products + sum(2 * n * n * 2 * dim for n in lengths)

    with torch.no_grad():
        count = bench.count_flops(lambda: encoder(x))
        assert count['total'] == 2 * layer([5, 5])
        # a padding mask: sequences of 5 and 3 tokens (a nested tensor)
        padded = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
        one = nn.TransformerEncoder(encoder.layers[0], 1).eval()
        count = bench.count_flops(lambda: one(x, src_key_padding_mask=padded))
        assert count['total'] == layer([5, 3])
        a, b, v = torch.randn(5, 8), torch.randn(8, 6), torch.randn(8)
        aten = torch.ops.aten
        for fn, flops in [(lambda: a @ v, 2 * 5 * 8),  # mv
                          (lambda: torch.randn(3, 5, 8) @ v, 2 * 15 * 8),
                          (lambda: torch.addmv(torch.randn(5), a, v), 2 * 5 * 8),
                          (lambda: torch.dot(v, v), 2 * 8),
                          (lambda: torch.vdot(v, v), 2 * 8),
                          (lambda: torch.addbmm(torch.randn(5, 6), torch.randn(3, 5, 8),
                                                torch.randn(3, 8, 6)), 2 * 3 * 5 * 8 * 6),
                          (lambda: aten._addmm_activation(torch.randn(6), a, b),
                           2 * 5 * 8 * 6)]:
            assert bench.count_flops(fn)['total'] == flops


class LearnedQueries(nn.Module):
    """FC-CLIP's decoder pattern: learned queries, a view of a parameter
    made under no_grad (it requires grad without a grad_fn), go through a
    norm and a linear layer."""

    def __init__(self):
        super().__init__()
        self.queries = nn.Embedding(4, 8)
        self.norm = nn.LayerNorm(8)
        self.proj = nn.Linear(8, 8)

    def forward(self, batch: int):
        q = self.queries.weight[None].expand(batch, -1, -1)
        return self.proj(self.norm(q))


def test_count_handles_views_of_parameters_and_restores_requires_grad():
    model = LearnedQueries().eval()
    with torch.no_grad():
        with pytest.raises(AssertionError, match='gradient function'):
            bench.count_flops(lambda: model(2))  # PyTorch's module tracker
        count = bench.count_flops(lambda: model(2), model=model)
    assert count['total'] == 2 * (2 * 4) * 8 * 8  # 8 query rows through 8 x 8
    assert all(p.requires_grad for p in model.parameters())
