"""Pre-computed class-agnostic masks read from files, one file per image.

Format (CorrCLIP's published one, github.com/zdk258/CorrCLIP,
``CorrCLIPSegmentation.generate_mask`` with ``instance_mask_path``):

* ``<mask_dir>/<image stem>.npz`` holding ``instance_mask``, an (H, W)
  integer array of region ids at the image's original size, whose
  **minimum** value marks the pixels that no mask covers (CorrCLIP discards
  that value, even where it is the only one);
* optionally a scalar ``unsegmented`` in the same file: the id of the
  uncovered pixels (written by :func:`save_regions`, so a file where every
  pixel is covered loses no region); it overrides the minimum rule;
* or ``<mask_dir>/<image stem>.png``: a single-channel 8- or 16-bit image of
  region ids, with the minimum rule.

The stem is that of ``img_path`` in the sample's metainfo (the dataset's
image file), so ``val/ADE_val_00000001.jpg`` reads
``<mask_dir>/ADE_val_00000001.npz``.
"""
import os.path as osp
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from mmseg.registry import MODELS

from .base import BaseMaskGenerator, renumber

__all__ = ['FileMaskGenerator', 'load_regions', 'save_regions']

SUFFIXES = ('.npz', '.png')


def load_regions(path: str, unsegmented: Optional[str] = 'min') -> Tensor:
    """Reads a mask file (format above) as an (H, W) int64 region map.

    Args:
        path (str): A ``.npz`` or ``.png`` file.
        unsegmented (str, optional): ``'min'`` (the minimum id marks the
            uncovered pixels, CorrCLIP's rule) or None (every id is a
            region); a file's own ``unsegmented`` entry takes precedence.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Mask file {path!r} not found: pre-compute one mask file per '
            f'image (<stem>.npz with `instance_mask`, see '
            f'mmovss/models/mask_generators/files.py) or use a generator '
            f'that computes masks (SAMMaskGenerator).')
    uncovered = None
    if path.endswith('.npz'):
        with np.load(path) as data:
            if 'instance_mask' not in data:
                raise KeyError(f'Mask file {path!r} has no `instance_mask` '
                               f'array (found {sorted(data.files)}).')
            ids = np.asarray(data['instance_mask'])
            if 'unsegmented' in data:
                uncovered = int(data['unsegmented'])
    else:
        from PIL import Image
        with Image.open(path) as img:
            ids = np.asarray(img)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f'Mask file {path!r}: expected an (H, W) integer '
                         f'array of region ids, got {ids.dtype} '
                         f'{ids.shape}.')
    ids = torch.from_numpy(ids.astype(np.int64))
    if uncovered is None and unsegmented == 'min' and ids.numel():
        uncovered = int(ids.min())
    if ids.numel():
        mark = ids == uncovered if uncovered is not None else None
        ids = ids - ids.min()  # >= 0, so -1 is free for the uncovered
        if mark is not None:
            ids[mark] = -1
    return renumber(ids)


def save_regions(path: str, regions: Tensor) -> None:
    """Writes an (H, W) region map (-1: uncovered) in the format above."""
    ids = (regions.cpu().to(torch.int64) + 1).numpy().astype(np.int32)
    np.savez_compressed(path, instance_mask=ids, unsegmented=np.int32(0))


@MODELS.register_module()
class FileMaskGenerator(BaseMaskGenerator):
    """Masks pre-computed per image, read from ``mask_dir`` (format above).

    Args:
        mask_dir (str): Folder of ``<image stem><suffix>`` files.
        suffix (str): ``'.npz'`` (default) or ``'.png'``.
        unsegmented (str, optional): ``'min'`` (CorrCLIP's rule) or None
            (every id is a region).
    """
    needs_pixels = False
    cacheable = False  # already files

    def __init__(self, mask_dir: str, suffix: str = '.npz',
                 unsegmented: Optional[str] = 'min'):
        super().__init__()
        if suffix not in SUFFIXES:
            raise ValueError(f'FileMaskGenerator: suffix={suffix!r}; use one '
                             f'of {SUFFIXES}.')
        if unsegmented not in ('min', None):
            raise ValueError(f"FileMaskGenerator: unsegmented={unsegmented!r};"
                             f" use 'min' or None.")
        self.mask_dir = osp.expanduser(mask_dir)
        self.suffix = suffix
        self.unsegmented = unsegmented

    def path_of(self, img_meta: Optional[dict]) -> str:
        """The mask file of a sample."""
        img_path = (img_meta or {}).get('img_path')
        if not img_path:
            raise ValueError(
                'FileMaskGenerator finds masks by the image file name, but '
                'the sample has no `img_path` (e.g. an in-memory array); '
                'use a generator that computes masks (SAMMaskGenerator).')
        return osp.join(self.mask_dir, Path(img_path).stem + self.suffix)

    def regions(self, pixels: Optional[Tensor],
                img_meta: Optional[dict] = None) -> Tensor:
        regions = load_regions(self.path_of(img_meta), self.unsegmented)
        return regions if pixels is None else regions.to(pixels.device)

    def forward(self, pixels: Optional[Tensor],
                img_meta: Optional[dict] = None):
        regions = self.regions(pixels, img_meta)
        num = int(regions.max()) + 1 if regions.numel() else 0
        masks = regions[None] == torch.arange(num, device=regions.device)[
            :, None, None]
        return masks, torch.ones(num, device=regions.device)
