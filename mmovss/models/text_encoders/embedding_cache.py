"""An on-disk cache of text embeddings that detects stale or corrupt files.

One file per (model, weights, templates, names) key: ``<dir>/<sha256>.pth``
holding the full key (JSON), the (N, D) float32 embeddings and the SHA-256
of their bytes. A file whose key differs from the request (stale), that
cannot be read, or whose checksum fails (corrupt) is reported with a warning
and treated as a miss, so that the caller recomputes and overwrites it.
Writes are atomic (temporary file + ``os.replace``), so processes sharing
the directory never read a half-written file. A directory that cannot be
written (read-only, a file in its place, a full disk) is reported once with
a warning naming it; the embeddings are still returned, only not kept.
"""
import hashlib
import json
import os
import tempfile
import warnings
from typing import Optional

import torch
from torch import Tensor

__all__ = ['TextEmbeddingDiskCache']

_FORMAT = 'mmovss-text-embeddings-v1'


def _tensor_sha256(tensor: Tensor) -> str:
    data = tensor.detach().cpu().contiguous().view(torch.uint8).numpy()
    return hashlib.sha256(data.tobytes()).hexdigest()


class TextEmbeddingDiskCache:
    """Text embeddings stored under a directory, keyed by a JSON-able dict.

    Args:
        cache_dir (str): Directory of the cache files (created if missing).
    """

    def __init__(self, cache_dir: str):
        self.cache_dir = os.path.expanduser(os.fspath(cache_dir))
        self._write_failed = False

    @staticmethod
    def key_text(key: dict) -> str:
        return json.dumps(dict(key, format=_FORMAT), sort_keys=True)

    def path_for(self, key: dict) -> str:
        digest = hashlib.sha256(self.key_text(key).encode()).hexdigest()
        return os.path.join(self.cache_dir, f'{digest}.pth')

    def load(self, key: dict, num_rows: int) -> Optional[Tensor]:
        """The cached (num_rows, D) embeddings of ``key``, or None."""
        path = self.path_for(key)
        if not os.path.exists(path):
            return None
        try:
            entry = torch.load(path, map_location='cpu', weights_only=True)
            key_text = entry['key']
            embeds = entry['embeddings']
            checksum = entry['sha256']
        except Exception as e:  # unreadable / truncated / not our format
            warnings.warn(f'Text embedding cache file {path} is corrupt '
                          f'({type(e).__name__}: {e}); recomputing it.')
            return None
        if key_text != self.key_text(key):
            warnings.warn(f'Text embedding cache file {path} is stale (it was '
                          f'written for another model, weights, templates or '
                          f'names); recomputing it.')
            return None
        if not isinstance(embeds, Tensor) or embeds.dim() != 2 or \
                embeds.shape[0] != num_rows or \
                _tensor_sha256(embeds) != checksum:
            warnings.warn(f'Text embedding cache file {path} is corrupt '
                          f'(checksum or shape mismatch); recomputing it.')
            return None
        return embeds

    def save(self, key: dict, embeds: Tensor) -> Optional[str]:
        """Writes the embeddings of ``key`` atomically; returns the path.

        Returns None, with a warning the first time, when the directory
        cannot be written (``OSError``: read-only, a file in its place, a
        full disk): the cache is then only a missed speed-up.
        """
        path = self.path_for(key)
        embeds = embeds.detach().to('cpu', torch.float32).contiguous()
        entry = dict(key=self.key_text(key), embeddings=embeds,
                     sha256=_tensor_sha256(embeds))
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix='.tmp')
        except OSError as e:
            self._warn_unwritable(e)
            return None
        try:
            with os.fdopen(fd, 'wb') as f:
                torch.save(entry, f)
            os.replace(tmp, path)
        except BaseException as e:
            if os.path.exists(tmp):
                os.remove(tmp)
            if isinstance(e, OSError):
                self._warn_unwritable(e)
                return None
            raise
        return path

    def _warn_unwritable(self, error: OSError) -> None:
        if self._write_failed:
            return
        self._write_failed = True
        warnings.warn(
            f'Text embedding cache directory {self.cache_dir!r} cannot be '
            f'written ({type(error).__name__}: {error}); the embeddings are '
            f'computed and used but not kept on disk. Give a writable '
            f'directory as text_encoder.cache_dir, or cache_dir=None to keep '
            f'them in memory only (--cfg-options '
            f'model.text_encoder.cache_dir=None).', stacklevel=4)
