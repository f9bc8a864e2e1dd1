"""An on-disk cache of text embeddings that detects stale or corrupt files.

One file per (model, weights, templates, names) key: ``<dir>/<sha256>.pth``
holding the full key (JSON), the (N, D) float32 embeddings and the SHA-256
of their bytes. A file whose key differs from the request (stale), that
cannot be read, or whose checksum fails (corrupt) is reported with a warning
and treated as a miss, so that the caller recomputes and overwrites it.
Writes are atomic (temporary file + ``os.replace``), so processes sharing
the directory never read a half-written file. A directory that cannot be
written (read-only, a file in its place, a full disk) is reported once with
a warning naming it; the embeddings are still returned, only not kept
(:class:`~mmovss.io.CacheFolder`, shared with the mask cache).
"""
import hashlib
import json
import os
import warnings
from typing import Optional

import torch
from torch import Tensor

from mmovss.io import CacheFolder

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
        self.folder = CacheFolder(
            cache_dir, 'Text embedding cache',
            'the embeddings are computed and used but not kept on disk',
            'Give a writable directory as text_encoder.cache_dir, or '
            'cache_dir=None to keep them in memory only (--cfg-options '
            'model.text_encoder.cache_dir=None).')
        self.cache_dir = self.folder.path

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
        embeds = embeds.detach().to('cpu', torch.float32).contiguous()
        entry = dict(key=self.key_text(key), embeddings=embeds,
                     sha256=_tensor_sha256(embeds))
        return self.folder.write(os.path.basename(self.path_for(key)),
                                 lambda tmp: torch.save(entry, tmp))
