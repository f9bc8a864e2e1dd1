"""A folder of cache files, written atomically, that may be unwritable.

Files are written to a temporary file in the folder and renamed into place
(``os.replace``), so processes sharing the folder never read a half-written
one. A cache only saves time: a folder that cannot be written (read-only, a
file in its place, a full disk) is reported once with a warning naming it
and the setting that moves it, and the caller goes on with what it computed.
"""
import os
import tempfile
import warnings
from typing import Callable, Optional

__all__ = ['CacheFolder']


class CacheFolder:
    """Where a cache keeps its files; writes atomically, warns once.

    Args:
        path (str): The folder (``~`` expanded; created on first write).
        what (str): What is cached, for the warning (``'Text embedding
            cache'``).
        lost (str): What an unwritable folder costs, for the warning (``'the
            embeddings are computed and used but not kept on disk'``).
        advice (str): How to fix it, for the warning (``'Give a writable
            directory as text_encoder.cache_dir, or ...'``).
    """

    def __init__(self, path: str, what: str, lost: str, advice: str):
        self.path = os.path.expanduser(os.fspath(path))
        self.what = what
        self.lost = lost
        self.advice = advice
        self.write_failed = False

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def write(self, name: str, write: Callable[[str], None],
              suffix: str = '.tmp') -> Optional[str]:
        """Writes the file ``name`` with ``write(temporary_path)``.

        Args:
            name (str): The file name in the folder.
            write (Callable[[str], None]): Writes the content to the path it
                is given (a temporary file ending with ``suffix``).
            suffix (str): Suffix of the temporary file (``np.savez`` adds
                ``.npz`` to paths without it).

        Returns:
            str | None: The file's path, or None (with a warning the first
            time) when the folder cannot be written (an ``OSError``).
        """
        path = self.join(name)
        try:
            os.makedirs(self.path, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path, suffix=suffix)
            os.close(fd)
        except OSError as e:
            self._warn_unwritable(e)
            return None
        try:
            write(tmp)
            os.replace(tmp, path)
        except OSError as e:
            self._warn_unwritable(e)
            return None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path

    def _warn_unwritable(self, error: OSError) -> None:
        if self.write_failed:
            return
        self.write_failed = True
        warnings.warn(
            f'{self.what} directory {self.path!r} cannot be written '
            f'({type(error).__name__}: {error}); {self.lost}. {self.advice}',
            stacklevel=4)
