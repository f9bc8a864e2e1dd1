"""A folder of computed masks, so each image's masks are computed once.

The key of an image is the SHA-1 of its pixels (shape and uint8 RGB values)
and of the generator's settings (its config, JSON with sorted keys), so a
changed image or generator never reads stale masks, and images with the same
content share their masks whatever their file names. Entries are region maps
in the format of :mod:`~mmovss.models.mask_generators.files`
(``<key>.npz``), written atomically (temporary file + rename) so parallel
workers may share the folder. A folder that cannot be written (read-only, a
file in its place, a full disk) is reported once with a warning naming it
(:class:`~mmovss.io.CacheFolder`, shared with the text embedding cache); the
masks are still used, only computed again next time.
"""
import hashlib
import json
import os.path as osp
from typing import Callable, Optional

import torch
from torch import Tensor

from mmovss.io import CacheFolder

from .files import load_regions, save_regions

__all__ = ['MaskCache', 'settings_digest']


def settings_digest(settings: dict) -> str:
    """SHA-1 of a generator config (JSON, sorted keys; others as repr)."""
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha1(text.encode()).hexdigest()


class MaskCache:
    """Region maps kept in ``cache_dir`` by image content + settings.

    Args:
        cache_dir (str): The folder (created on first write).
        settings (dict): The generator's config (part of every key).
    """

    def __init__(self, cache_dir: str, settings: dict):
        self.folder = CacheFolder(
            cache_dir, 'Mask cache',
            'the masks are computed and used but not kept, so they are '
            'computed again in every run',
            'Give a writable directory as mask_refinement.cache_dir, or '
            'cache_dir=None to not cache masks (--cfg-options '
            'model.decode_head.mask_refinement.cache_dir=None).')
        self.cache_dir = self.folder.path
        self.settings = settings_digest(settings)[:16]

    def key(self, pixels: Tensor) -> str:
        """The entry name of an image: content hash + settings hash."""
        image = pixels.detach().clamp(0, 255).round().to(torch.uint8).cpu()
        digest = hashlib.sha1(str(tuple(image.shape)).encode())
        digest.update(image.contiguous().numpy().tobytes())
        return f'{digest.hexdigest()}_{self.settings}'

    def path(self, pixels: Tensor) -> str:
        return self.folder.join(self.key(pixels) + '.npz')

    def get_or_compute(self, pixels: Tensor,
                       compute: Callable[[], Tensor]) -> Tensor:
        """The cached region map of ``pixels``, or ``compute()`` stored.

        A folder that cannot be written is warned about once; the computed
        map is returned all the same.
        """
        path = self.path(pixels)
        if osp.isfile(path):
            return load_regions(path).to(pixels.device)
        regions = compute()
        self.folder.write(osp.basename(path),
                          lambda tmp: save_regions(tmp, regions),
                          suffix='.npz')
        return regions

    def __repr__(self) -> str:
        return f'MaskCache({self.cache_dir!r}, settings={self.settings})'


def optional_cache(cache_dir: Optional[str],
                   settings: dict) -> Optional[MaskCache]:
    return MaskCache(cache_dir, settings) if cache_dir else None
