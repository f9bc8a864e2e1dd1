"""Mask-guided refinement of dense predictions by class-agnostic regions.

Any training-free dense method (SCLIP, NACLIP, ClearCLIP, ProxyCLIP, ...)
can vote within the regions of a mask generator through its head's config::

    decode_head=dict(mask_refinement=dict(
        type='MaskVoteRefinement', mode='majority',
        generator=dict(type='FileMaskGenerator', mask_dir='data/masks'),
        cache_dir=None))

The regions ``R_1..R_K`` are the flattened masks of one image at its
original size (:mod:`~mmovss.models.mask_generators.base`); pixels in no
region are left as they are. Two votes:

* ``'majority'`` -- CorrCLIP's *map correction* (Zhang et al., "CorrCLIP:
  Reconstructing Patch Correlations in CLIP for Open-Vocabulary Semantic
  Segmentation", CVPR 2025; github.com/zdk258/CorrCLIP @ 103bc18,
  ``CorrCLIPv2/corrclip_segmentor.py``, ``postprocess_result``, "Map
  Correction", where the masks are ``torch.mode``-voted): after the labels are final (including the
  probability threshold's background), every pixel ``p`` of ``R_k`` gets

      y'(p) = argmax_c |{q in R_k : y(q) = c}|

  (ties: the smallest class index).
* ``'mean'`` -- the region average of the per-name similarities at the
  original size (after PAMR, before the softmax):

      s'_n(p) = 1/|R_k| sum_{q in R_k} s_n(q),   p in R_k,

  the "mask's mean logits" vote of issue #20. It is *not* Trident's
  refinement (Shi et al., arXiv 2411.09219; github.com/YuHengsss/Trident,
  ``trident.py``: ``sam_refinement`` prompts SAM's predictor with the
  coarse prediction of each class), which needs prompts, not automatic
  masks, and is not implemented here. The mean is linear, so it is
  the same on ``tau * s_n`` and runs chunk by chunk with the head.

Masks that need pixels (SAM) get the original image: ``img_path`` of the
sample read as RGB when it exists and has the original size, else the
network input de-normalised with ``mean``/``std`` and resized bilinearly to
the original size. With ``cache_dir``, each image's regions are computed
once (:class:`~mmovss.models.mask_generators.MaskCache`).
"""
import copy
import os.path as osp
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from .base import generator_regions
from .cache import optional_cache

__all__ = ['MaskVoteRefinement', 'mean_vote', 'majority_vote']

MODES = ('majority', 'mean')
# CLIP's normalisation as written in the training-free configs (RGB)
CLIP_MEAN = (122.771, 116.746, 104.094)
CLIP_STD = (68.501, 66.632, 70.323)


def _flat_regions(regions: Tensor) -> Tuple[Tensor, Tensor, int]:
    flat = regions.flatten()
    valid = flat >= 0
    idx = flat[valid]
    return valid, idx, (int(idx.max()) + 1 if idx.numel() else 0)


def mean_vote(x: Tensor, regions: Tensor) -> Tensor:
    """(C, H, W) maps averaged within each region (``'mean'`` above)."""
    if x.shape[-2:] != regions.shape:
        raise ValueError(f'mean_vote: maps {tuple(x.shape)} and regions '
                         f'{tuple(regions.shape)} differ in size.')
    valid, idx, num = _flat_regions(regions.to(x.device))
    if num == 0:
        return x
    flat = x.reshape(x.shape[0], -1)
    sums = flat.new_zeros(flat.shape[0], num).index_add_(1, idx,
                                                          flat[:, valid])
    counts = torch.bincount(idx, minlength=num).to(flat)
    out = flat.clone()
    out[:, valid] = (sums / counts)[:, idx]
    return out.view_as(x)


def majority_vote(labels: Tensor, regions: Tensor) -> Tensor:
    """Labels (..., H, W) replaced by each region's most frequent label."""
    if labels.shape[-2:] != regions.shape:
        raise ValueError(f'majority_vote: labels {tuple(labels.shape)} and '
                         f'regions {tuple(regions.shape)} differ in size.')
    valid, idx, num = _flat_regions(regions.to(labels.device))
    if num == 0:
        return labels
    flat = labels.reshape(-1).clone()
    lab = flat[valid].long()
    num_labels = int(lab.max()) + 1
    counts = torch.bincount(idx * num_labels + lab,
                            minlength=num * num_labels)
    winner = counts.view(num, num_labels).argmax(1)  # first max: smallest
    flat[valid] = winner[idx].to(flat)
    return flat.view_as(labels)


@MODELS.register_module()
class MaskVoteRefinement(nn.Module):
    """Votes of dense predictions within class-agnostic regions.

    Args:
        generator (dict): A mask generator config (``FileMaskGenerator``,
            ``SAMMaskGenerator``, ``SAM2MaskGenerator``, or any registered
            module with the mask-generator call).
        mode (str): ``'majority'`` (CorrCLIP) or ``'mean'`` (see above).
        cache_dir (str, optional): Folder of computed regions (keyed by
            image content and generator settings); None: no cache.
        mean (Sequence[float]): RGB mean of the network input's
            normalisation (to recover pixels when ``img_path`` is absent).
        std (Sequence[float]): RGB std of that normalisation.
    """

    def __init__(self, generator: dict, mode: str = 'majority',
                 cache_dir: Optional[str] = None,
                 mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f'MaskVoteRefinement: mode={mode!r}; use one of '
                             f'{MODES}.')
        if not isinstance(generator, dict) or 'type' not in generator:
            raise ValueError(
                'MaskVoteRefinement needs generator=dict(type=...), e.g. '
                "dict(type='FileMaskGenerator', mask_dir='data/masks').")
        self.mode = mode
        self.generator = MODELS.build(copy.deepcopy(generator))
        cacheable = getattr(self.generator, 'cacheable', True)
        self.cache = optional_cache(cache_dir if cacheable else None,
                                    dict(generator))
        self.register_buffer('mean', torch.tensor(mean).view(3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std).view(3, 1, 1),
                             persistent=False)

    def pixels(self, size: Tuple[int, int], image: Optional[Tensor],
               img_meta: Optional[dict]) -> Tensor:
        """(3, H, W) RGB values in [0, 255] of the original image."""
        path = (img_meta or {}).get('img_path')
        device = image.device if image is not None else self.mean.device
        if path and osp.isfile(path):
            import mmcv
            rgb = mmcv.imread(path, channel_order='rgb')
            if rgb is not None and tuple(rgb.shape[:2]) == tuple(size):
                return torch.from_numpy(rgb).permute(2, 0, 1).to(
                    device, torch.float32)
        if image is None:
            raise ValueError(
                'MaskVoteRefinement: the mask generator needs the image, but '
                'the sample has no readable `img_path` and no network input '
                'was given.')
        rgb = image.float() * self.std.to(device) + self.mean.to(device)
        rgb = F.interpolate(rgb[None], size=tuple(size), mode='bilinear',
                            align_corners=False)[0]
        return rgb.clamp(0, 255)

    @torch.no_grad()
    def region_map(self, size: Sequence[int], image: Optional[Tensor] = None,
                   img_meta: Optional[dict] = None) -> Tensor:
        """The (H, W) region map of one image at the original ``size``."""
        size = tuple(int(s) for s in size)
        if getattr(self.generator, 'needs_pixels', True):
            pixels = self.pixels(size, image, img_meta)

            def compute():
                return generator_regions(self.generator, pixels, img_meta)

            regions = (self.cache.get_or_compute(pixels, compute)
                       if self.cache is not None else compute())
        else:
            regions = generator_regions(self.generator, None, img_meta)
            if image is not None:
                regions = regions.to(image.device)
        if tuple(regions.shape) != size:  # masks at another resolution
            regions = F.interpolate(regions[None, None].float(), size=size,
                                    mode='nearest')[0, 0].long()
        return regions

    def refine_similarities(self, sims: Tensor, regions: Tensor) -> Tensor:
        """``'mean'``: (n, H, W) similarities averaged per region."""
        return mean_vote(sims, regions) if self.mode == 'mean' else sims

    def refine_labels(self, labels: Tensor, regions: Tensor) -> Tensor:
        """``'majority'``: (1, H, W) labels voted per region."""
        return majority_vote(labels, regions) \
            if self.mode == 'majority' else labels
