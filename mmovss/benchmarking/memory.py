"""Resident memory of this process: current and peak (Linux ``/proc``)."""
import resource
import sys
from typing import Optional


def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mb() -> Optional[float]:
    """Resident set size of this process (MiB), None where unknown."""
    kb = _proc_status_kb('VmRSS')
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS counter (``VmHWM``) of this process.

    Returns:
        bool: Whether it was reset (Linux >= 4.0). If not, :func:`peak_rss_mb`
        reports the peak over the whole life of the process.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size (MiB) since the last :func:`reset_peak_rss`."""
    kb = _proc_status_kb('VmHWM')
    if kb is None:  # not Linux: lifetime peak (bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = peak / 1024 if sys.platform == 'darwin' else peak
    return kb / 1024


#: Set before PyTorch's first CPU allocation (the tools do, unless it is already
#: set), it makes PyTorch align CPU tensors of >= 2 MiB to 2 MiB and advise the
#: kernel to back them with transparent huge pages: one page fault per 2 MiB
#: instead of one per 4 KiB on every fresh large buffer (docs/benchmarks.md,
#: "Huge pages for large CPU tensors").
HUGE_PAGES_ENV = 'THP_MEM_ALLOC_ENABLE'


def huge_page_allocations(probe_mb: int = 64) -> Optional[bool]:
    """Whether large CPU tensors of this process get huge pages, measured.

    Allocates and fills a ``probe_mb`` MiB tensor (above glibc's largest mmap
    threshold, 32 MiB, so it is fresh memory) and counts the minor page
    faults: about one per 4 KiB page without huge pages, one per 2 MiB with.

    Returns:
        Optional[bool]: True with huge pages, False without, None where the
        fault counter is not available.
    """
    import torch
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(probe_mb << 20, dtype=torch.uint8).fill_(1)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    if faults <= 0:
        return None
    return faults < (probe_mb << 20) // 4096 // 8
