"""Results computed from a file's content, once per version of the file."""
import functools
import os
import os.path as osp
from typing import Callable, TypeVar

__all__ = ['memoised_per_file_version']

T = TypeVar('T')


def memoised_per_file_version(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn(path, *args)`` computed once per (real path, size, modification
    time) and ``args`` in this process: a file rewritten since gives a new
    result, the same file reached by another path the same one.

    ``args`` (e.g. the size a font is loaded at) must be hashable.

    Raises:
        OSError: ``path`` cannot be stat'ed (the wrapper's own ``os.stat``).
    """
    memo = {}

    @functools.wraps(fn)
    def wrapper(path: str, *args) -> T:
        st = os.stat(path)
        key = (osp.realpath(path), st.st_size, st.st_mtime_ns, args)
        if key not in memo:
            memo[key] = fn(path, *args)
        return memo[key]

    return wrapper
