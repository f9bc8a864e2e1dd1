"""Wall-clock timing, statistics and the machine a measurement ran on.

The one timing helper of the benchmark tools: :func:`timed_runs` runs the
work (warm-up untimed, then timed, CUDA synchronised around each run;
:func:`timed_call` for one call whose result is needed) and
:func:`summarize_times` turns the seconds into median / p90 / throughput.
"""
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .errors import BenchmarkError


def synchronize(device) -> None:
    """Waits for queued GPU work (no-op on CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def timed_runs(fn: Callable[[], object], repeat: int, warmup: int = 0,
               device='cpu', cpu_times: Optional[list] = None,
               after_each: Optional[Callable[[], object]] = None) -> List[float]:
    """Runs ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    Args:
        fn: The work to time (its result is discarded; a caller that needs
            it keeps it from inside ``fn``).
        repeat: Timed runs (>= 1).
        warmup: Untimed runs before (>= 0).
        device: The device ``fn`` runs on; CUDA is synchronised around each
            timed run.
        cpu_times (list, optional): Receives the CPU time (user + system,
            all threads of this process) of each timed run, which other
            processes competing for the cores do not inflate as much as
            wall-clock time.
        after_each: Called after each timed run, outside its timing (e.g. a
            matrix peak measured beside every run).

    Returns:
        list[float]: Wall-clock seconds of each timed run.
    """
    if repeat < 1 or warmup < 0:
        raise BenchmarkError(f'repeat must be >= 1 and warmup >= 0, got '
                             f'repeat={repeat}, warmup={warmup}.')
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize(device)
        cpu_start = time.process_time()
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu_start)
        if after_each is not None:
            after_each()
    return times


def timed_call(fn: Callable[[], object], device='cpu'
               ) -> Tuple[float, float, object]:
    """One timed call of ``fn`` (through :func:`timed_runs`), with its result.

    Returns:
        tuple: Wall-clock seconds, CPU seconds (all threads of this process)
        and what ``fn`` returned.
    """
    results, cpu_times = [], []
    seconds = timed_runs(lambda: results.append(fn()), 1, 0, device,
                         cpu_times)[0]
    return seconds, cpu_times[0], results[0]


def summarize_times(times: Sequence[float]) -> Dict[str, float]:
    """Median, p90 (linear interpolation), mean, min, max and throughput.

    Args:
        times: Seconds per run (non-empty).

    Returns:
        dict: ``median``, ``p90``, ``mean``, ``min``, ``max`` (seconds),
        ``per_s`` (runs per second, ``len(times) / sum(times)``) and
        ``runs`` (the times themselves).
    """
    if not times:
        raise BenchmarkError('no timed runs to summarise.')
    values = [float(t) for t in times]
    return dict(median=statistics.median(values),
                p90=float(np.percentile(values, 90)),
                mean=statistics.fmean(values), min=min(values),
                max=max(values), per_s=len(values) / sum(values),
                runs=values)


def is_contended(load_average: float, own_threads: int) -> bool:
    """Whether other processes compete for the cores.

    The 1-minute load average counts the benchmark's own busy threads (up to
    one per core); more than half a core beyond them is other work.
    """
    cores = os.cpu_count() or 1
    return load_average - min(own_threads, cores) > 0.5


def check_device(device: str) -> str:
    """``device`` if this machine has it, else a clear error
    (:func:`mmovss.runtime.device_problem`, the check of every entry point)."""
    from mmovss.runtime import device_problem
    problem = device_problem(device)
    if problem:
        raise BenchmarkError(problem)
    if torch.device(device).type not in ('cpu', 'cuda'):
        raise BenchmarkError(f"--device {device!r}: use 'cpu' or 'cuda[:N]'.")
    return device


def device_name(device: str) -> str:
    """The GPU's name, or the CPU model and core count."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{name}, {os.cpu_count()} cores'
