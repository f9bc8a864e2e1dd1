"""Unpickling of downloaded files without running their code.

:func:`pickle.load` calls whatever global a file names (a crafted file's
``__reduce__`` can return ``os.system``). :func:`load_restricted_pickle`
resolves only the globals of an allow-list and refuses any other with an
error naming the file and the global; nothing of the file runs. The default
list, :data:`NUMPY_ARRAY_GLOBALS`, covers plain containers and NumPy arrays,
scalars and dtypes (what ``index_ade20k.pkl`` of ADE20K-full holds).
Checkpoints go through ``torch.load(..., weights_only=True)`` instead (see
:mod:`mmovss.compat`).
"""
import pickle
from typing import FrozenSet, Tuple

__all__ = ['NUMPY_ARRAY_GLOBALS', 'UnsafePickleError', 'load_restricted_pickle']

NUMPY_ARRAY_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset(
    [(module, name)
     for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
     for name in ('_reconstruct', 'scalar')] +
    # Protocol 5 rebuilds arrays from their buffer.
    [(module, '_frombuffer') for module in ('numpy.core.numeric', 'numpy._core.numeric')] +
    [('numpy', 'ndarray'), ('numpy', 'dtype'), ('collections', 'OrderedDict'),
     # Protocol 2 writes bytes as _codecs.encode(str, 'latin1').
     ('_codecs', 'encode'), ('builtins', 'set'), ('builtins', 'frozenset'),
     ('builtins', 'bytearray')])


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, file, allowed, source):
        super().__init__(file)
        self.allowed = allowed
        self.source = source

    def find_class(self, module, name):
        # NumPy >= 1.25 pickles dtypes as instances of numpy.dtypes.*DType.
        dtype_class = module == 'numpy.dtypes' and name.endswith('DType')
        if (module, name) in self.allowed or dtype_class:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.source}: refusing to unpickle the global '{module}.{name}' (only "
            'containers and NumPy arrays are allowed; a file that names other code may run '
            'it). Re-download the file from its official source.')


def load_restricted_pickle(path: str, allowed=NUMPY_ARRAY_GLOBALS):
    """Unpickles ``path`` resolving only the globals in ``allowed``.

    Args:
        path: The pickle file.
        allowed: ``(module, name)`` pairs that may be resolved.

    Raises:
        UnsafePickleError: The file names another global (nothing of it ran).
    """
    with open(path, 'rb') as f:
        return _RestrictedUnpickler(f, frozenset(allowed), path).load()
