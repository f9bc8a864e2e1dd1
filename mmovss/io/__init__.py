"""Safe file input/output shared by every tool: where outputs may go, what
may be unpickled; results memoised per version of a file; cache folders
written atomically."""
from .cache_folder import CacheFolder
from .file_memo import memoised_per_file_version
from .output_guard import (
    UnsafeOutputError,
    check_output_dir,
    check_output_file,
    check_planned_outputs,
    inode_key,
)
from .safe_pickle import NUMPY_ARRAY_GLOBALS, UnsafePickleError, load_restricted_pickle
from .temporary import temporary_beside

__all__ = [
    'CacheFolder',
    'UnsafeOutputError', 'check_output_dir', 'check_output_file', 'check_planned_outputs',
    'inode_key',
    'NUMPY_ARRAY_GLOBALS', 'UnsafePickleError', 'load_restricted_pickle',
    'memoised_per_file_version', 'temporary_beside'
]
