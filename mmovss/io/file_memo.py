"""Results computed from a file's content, once per version of the file."""
import functools
import os
import os.path as osp
from typing import Callable, TypeVar

__all__ = ['memoised_per_file_version']

T = TypeVar('T')


def memoised_per_file_version(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn(path, *args)`` computed once per (real path, inode, size,
    modification time, status-change time) and ``args`` in this process: a
    file rewritten or replaced since gives a new result, the same file reached
    by another path the same one.

    The status-change time (``st_ctime_ns``) and the inode are in the key
    because the modification time alone can be carried over: a file replaced
    by one of the same size whose mtime was kept (``cp -p``, ``rsync -t``,
    ``tar x``, ``touch -r``, ``os.utime``) would otherwise give the old
    result (e.g. the SHA-256 of the old CLIP weights, which keys the text
    embedding cache). The change time cannot be set by the user.

    ``args`` (e.g. the size a font is loaded at) must be hashable.

    Raises:
        OSError: ``path`` cannot be stat'ed (the wrapper's own ``os.stat``).
    """
    memo = {}

    @functools.wraps(fn)
    def wrapper(path: str, *args) -> T:
        st = os.stat(path)
        key = (osp.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns,
               st.st_ctime_ns, args)
        if key not in memo:
            memo[key] = fn(path, *args)
        return memo[key]

    return wrapper
