"""The temporary file an atomic write goes to before its rename."""
import os
import os.path as osp
import tempfile

__all__ = ['temporary_beside']


def temporary_beside(path: str) -> str:
    """A new, empty hidden file ``.NAME.*.partial`` in the folder of ``path``.

    The caller writes it, then ``os.replace`` s it onto ``path``: an
    interrupted write never leaves a half-written ``path``. Hidden and ending
    in ``.partial``, a left-over is never taken for an output by a listing of
    the folder by suffix.
    """
    fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix='.partial',
                               dir=osp.dirname(osp.abspath(path)))
    os.close(fd)
    return tmp
