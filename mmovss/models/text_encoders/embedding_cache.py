"""An on-disk cache of text embeddings that detects stale or corrupt files.

One file per (model, weights, templates, names) key: ``<dir>/<sha256>.pth``
holding the full key (JSON), the (N, D) float32 embeddings and the SHA-256
of their bytes. A file whose key differs from the request (stale), that
cannot be read, or whose checksum fails (corrupt) is reported with a warning
and treated as a miss, so that the caller recomputes and overwrites it.
Writes are atomic (temporary file + ``os.replace``).
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

    def save(self, key: dict, embeds: Tensor) -> str:
        """Writes the embeddings of ``key`` atomically; returns the path."""
        os.makedirs(self.cache_dir, exist_ok=True)
        path = self.path_for(key)
        embeds = embeds.detach().to('cpu', torch.float32).contiguous()
        entry = dict(key=self.key_text(key), embeddings=embeds,
                     sha256=_tensor_sha256(embeds))
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix='.tmp')
        try:
            with os.fdopen(fd, 'wb') as f:
                torch.save(entry, f)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path
