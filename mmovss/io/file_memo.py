"""Results computed from a file's content, once per version of the file."""
import functools
import os
import os.path as osp
from typing import Callable, TypeVar

__all__ = ['memoised_per_file_version']

T = TypeVar('T')


def memoised_per_file_version(fn: Callable[[str], T]) -> Callable[[str], T]:
    """``fn(path)`` computed once per (real path, size, modification time) in
    this process: a file rewritten since gives a new result, the same file
    reached by another path the same one.

    Raises:
        OSError: ``path`` cannot be stat'ed (the wrapper's own ``os.stat``).
    """
    memo = {}

    @functools.wraps(fn)
    def wrapper(path: str) -> T:
        st = os.stat(path)
        key = (osp.realpath(path), st.st_size, st.st_mtime_ns)
        if key not in memo:
            memo[key] = fn(path)
        return memo[key]

    return wrapper
