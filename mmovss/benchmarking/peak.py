"""The machine's matrix peak, the bf16 check on CPU, and a run's efficiency.

The peak is the FLOP rate of ``torch.mm`` on the model's own dominant matrix
shape (the ``(M, K, N)`` of the ``mm``/``addmm`` calls carrying the most
FLOPs, :class:`~.flops.MatmulShapes`), in the run's precision, on the run's
device and thread count: the rate the model's matrix work could reach on
this machine. Efficiency is then the model's FLOPs (:mod:`.flops`) over its
median latency, and that rate's fraction of the peak; unlike a latency, the
fraction compares across machines.
"""
import math
from typing import Optional, Sequence

import torch

from .model import DTYPES
from .timing import synchronize, timed_runs

#: (M, K, N) of the CPU bf16 check, and of the peak when a model has no
#: matrix product: 1024 tokens through a ViT-B linear layer.
DEFAULT_SHAPE = (1024, 768, 768)


def matmul_peak(shape: Sequence[int], dtype: str = 'fp32', device='cpu',
                repeat: int = 5, warmup: int = 1,
                min_run_s: float = 0.05) -> dict:
    """The FLOP rate of ``torch.mm`` of one shape in one precision.

    Each timed run repeats the product enough times to last about
    ``min_run_s`` (calibrated on one call), so that short products are not
    timed by the clock's resolution; the peak is the fastest of ``repeat``
    runs after ``warmup`` untimed ones (a peak: other processes on a loaded
    machine only slow runs down). Uses torch's current thread count.

    Args:
        shape: ``(M, K, N)``: an ``(M, K) @ (K, N)`` product.
        dtype: ``'fp32'``, ``'bf16'`` or ``'fp16'``.
        device: ``'cpu'`` or ``'cuda[:N]'``.
        repeat: Timed runs.
        warmup: Untimed runs first.
        min_run_s: Target seconds of one timed run.

    Returns:
        dict: ``shape``, ``dtype``, ``gflops`` (the peak, GFLOP/s),
        ``median_gflops``, ``cpu_gflops`` (the peak per second of this
        process's CPU time, all threads: :func:`efficiency` on CPU time),
        ``calls`` (products per run), ``repeat`` and ``threads``.
    """
    m, k, n = (int(v) for v in shape)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(device, DTYPES[dtype])
    b = torch.randn(k, n, generator=generator).to(device, DTYPES[dtype])
    out = torch.empty(m, n, dtype=DTYPES[dtype], device=device)
    single = timed_runs(lambda: torch.mm(a, b, out=out), 1, 1, device)[0]
    calls = max(1, min(10000, math.ceil(min_run_s / max(single, 1e-7))))

    def run():
        for _ in range(calls):
            torch.mm(a, b, out=out)

    cpu_times = []
    times = sorted(timed_runs(run, repeat, warmup, device, cpu_times))
    synchronize(device)
    flops = 2.0 * m * k * n * calls
    return dict(shape=[m, k, n], dtype=dtype, gflops=flops / times[0] / 1e9,
                median_gflops=flops / times[len(times) // 2] / 1e9,
                cpu_gflops=flops / max(min(cpu_times), 1e-9) / 1e9,
                calls=calls, repeat=repeat, threads=torch.get_num_threads())


def matmul_peaks(shape: Sequence[int], dtypes: Sequence[str], device='cpu',
                 rounds: int = 3, measure=None) -> dict:
    """:func:`matmul_peak` of several precisions, interleaved, best of rounds.

    The precisions are measured in turn, ``rounds`` times, and each keeps
    its fastest round: a burst of load from other processes then slows one
    round of each rather than all of one precision.

    Args:
        shape: ``(M, K, N)``.
        dtypes: Precisions, e.g. ``('bf16', 'fp32')``.
        device: The device.
        rounds: Measurements of each precision.
        measure: The measuring function (default :func:`matmul_peak`; tests
            pass a fake).

    Returns:
        dict: ``{dtype: matmul_peak result}`` (the round with most GFLOP/s,
        ``rounds`` added; ``cpu_gflops``, where measured, is the best
        round's on CPU time, which may be another round).
    """
    measure = measure or matmul_peak
    best = {}
    for _ in range(max(1, rounds)):
        for dtype in dtypes:
            result = measure(shape, dtype, device)
            cpu = max(filter(None, (result.get('cpu_gflops'),
                                    best.get(dtype, {}).get('cpu_gflops'))),
                      default=None)
            if dtype not in best or result['gflops'] > best[dtype]['gflops']:
                best[dtype] = dict(result, rounds=rounds)
            if cpu is not None:
                best[dtype]['cpu_gflops'] = cpu
    return best


def bf16_falls_back(bf16_gflops: float, fp32_gflops: float) -> bool:
    """Whether a CPU run in bf16 falls back to fp32: bf16 products slower.

    A CPU without a bf16 matrix engine (AMX, AVX512-BF16) converts bf16 to
    fp32 for every product, and bf16 then costs more than fp32 for nothing.
    """
    return bf16_gflops < fp32_gflops


def bf16_message(bf16_gflops: float, fp32_gflops: float, shape) -> str:
    """The report's sentence on a bf16 run slower than fp32."""
    m, k, n = shape
    return (f'bf16 matrix products are slower than fp32 on this CPU '
            f'({bf16_gflops:.1f} vs {fp32_gflops:.1f} GFLOP/s, mm {m}x{k}x{n}; '
            f'no bf16 matrix engine such as AMX or AVX512-BF16)')


def efficiency(flops: Optional[int], seconds: Optional[float],
               peak_gflops: float) -> Optional[dict]:
    """Achieved FLOP rate of a run and its fraction of the peak.

    Args:
        flops: FLOPs of one run (None: not counted).
        seconds: Its median latency (None: not timed).
        peak_gflops: The matrix peak, GFLOP/s.

    Returns:
        dict | None: ``gflop`` (FLOPs / 1e9), ``seconds``,
        ``achieved_gflops`` (``gflop / seconds``) and ``fraction``
        (``achieved_gflops / peak_gflops``); None without FLOPs or time.
    """
    if flops is None or not seconds:
        return None
    achieved = flops / seconds / 1e9
    return dict(gflop=flops / 1e9, seconds=seconds, achieved_gflops=achieved,
                fraction=achieved / peak_gflops)
