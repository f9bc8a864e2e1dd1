"""The mask-generator interface and the conversion of masks to regions.

A *mask generator* gives class-agnostic masks of one image: a registered
module (``mmseg.registry.MODELS``) called as ``generator(pixels, img_meta)``
that returns ``(masks, scores)``, (M, H, W) bool masks at the image size and
(M,) confidences, as :class:`~mmovss.models.mask_generators.SAMMaskGenerator`
does. Generators that read masks from files need no pixels
(``needs_pixels = False``) and may give the region map directly
(:meth:`BaseMaskGenerator.regions`).

A *region map* is an (H, W) int64 tensor: the index of the region each
pixel belongs to, ``-1`` for pixels that no mask covers. Overlapping masks
(SAM's) are flattened by painting them from the largest to the smallest, so
each pixel belongs to the smallest mask that covers it.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['BaseMaskGenerator', 'masks_to_regions', 'generator_regions']


def masks_to_regions(masks: Tensor) -> Tensor:
    """(M, H, W) bool masks -> (H, W) int64 region map (-1: uncovered).

    Masks are painted largest first, so a pixel covered by several masks
    belongs to the smallest; a mask hidden entirely by smaller ones leaves
    no region. Region indices are renumbered 0..R-1 (R the regions left).
    """
    if masks.dim() != 3:
        raise ValueError(f'masks_to_regions expects (M, H, W) masks, got '
                         f'{tuple(masks.shape)}.')
    masks = masks.bool()
    regions = torch.full(masks.shape[1:], -1, dtype=torch.long,
                         device=masks.device)
    areas = masks.flatten(1).sum(1)
    # stable sort: equal areas keep the generator's order (later on top)
    order = torch.sort(areas, descending=True, stable=True).indices
    for i in order.tolist():
        regions[masks[i]] = i
    return renumber(regions)


def renumber(regions: Tensor) -> Tensor:
    """Region ids made consecutive 0..R-1 in increasing order; -1 kept."""
    ids, inverse = torch.unique(regions, return_inverse=True)
    if ids.numel() and int(ids[0]) < 0:
        return inverse - 1
    return inverse


class BaseMaskGenerator(nn.Module):
    """Base class of mask generators (frozen modules, no gradients).

    Subclasses implement :meth:`forward` (masks and scores) or, when their
    masks never overlap, :meth:`regions` directly.

    Attributes:
        needs_pixels (bool): Whether :meth:`forward` reads the pixels (False
            for masks read from files: they are found by ``img_meta``).
        cacheable (bool): Whether the masks are worth keeping in a cache
            folder (:class:`~mmovss.models.mask_generators.MaskCache`).
    """
    needs_pixels = True
    cacheable = True

    def forward(self, pixels: Optional[Tensor],
                img_meta: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
        """Masks of one image.

        Args:
            pixels (Tensor, optional): (3, H, W) RGB values in [0, 255].
            img_meta (dict, optional): The sample's metainfo (``img_path``,
                ``ori_shape``).

        Returns:
            tuple[Tensor, Tensor]: (M, H, W) bool masks and (M,) scores.
        """
        raise NotImplementedError

    def regions(self, pixels: Optional[Tensor],
                img_meta: Optional[dict] = None) -> Tensor:
        """The (H, W) region map of one image (see the module docstring)."""
        masks, _ = self(pixels, img_meta)
        return masks_to_regions(masks)


def generator_regions(generator: nn.Module, pixels: Optional[Tensor],
                      img_meta: Optional[dict]) -> Tensor:
    """Region map from any mask generator.

    :class:`BaseMaskGenerator` subclasses give it themselves; other modules
    with the mask-generator call (``generator(pixels) -> (masks, scores)``,
    such as :class:`~mmovss.models.mask_generators.SAMMaskGenerator`) are called
    with the pixels and their masks flattened.
    """
    if isinstance(generator, BaseMaskGenerator):
        return generator.regions(pixels, img_meta)
    masks, _ = generator(pixels)
    return masks_to_regions(masks)
