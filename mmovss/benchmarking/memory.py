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
