"""Pixel-adaptive mask refinement (PAMR).

Araslanov & Roth, "Single-Stage Semantic Segmentation from Image Labels",
CVPR 2020, Sec. 3.2, Eq. 3-5; used on the logits of training-free CLIP
segmentation by SCLIP and NACLIP (``pamr_steps=10``, dilations (8, 16)).

For every pixel ``i`` and each of its neighbours ``j`` (the 8 pixels at
offsets ``{-d, 0, d}^2 \\ {(0, 0)}`` for every dilation ``d``, with replicate
padding), the image gives the affinity

    k(i, j) = mean_c( -|I_c(i) - I_c(j)| / (1e-8 + 0.1 * sigma_c(i)) )
    a(i, j) = softmax_j k(i, j)

where ``sigma_c(i)`` is the unbiased standard deviation of channel ``c``
over the 3x3 windows (centre included) of all dilations. The masks are then
propagated ``num_iter`` times: ``m(i) <- sum_j a(i, j) m(j)``.

This implementation never materialises the (C, 8 * len(dilations), H, W)
stack of shifted masks: it accumulates one neighbour at a time and refines
``class_chunk`` channels at a time (channels are refined independently), so
it also runs at full resolution with many classes. By default a chunk holds
about :data:`CHUNK_BYTES` of masks, so that its padded copy and the
accumulator stay in the CPU's cache through the 16 passes of an iteration
and no buffer is large enough to be mapped afresh on every allocation:
150 classes at 512 x 683, 10 iterations, one thread of an Intel Xeon,
10.7 s (2.5 s of it system time) with all classes at once, 5.5 s in
chunks of 8, the same values (docs/benchmarks.md).
"""
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

__all__ = ['PAMR', 'neighbour_offsets', 'CHUNK_BYTES']

#: Bytes of masks (every image of the batch) refined at once when
#: ``class_chunk`` is None (8 MiB).
CHUNK_BYTES = 8 << 20

# the 3x3 window without its centre, in row-major order
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0),
            (1, 1))


def neighbour_offsets(dilations: Sequence[int]) -> Iterator[Tuple[int, int]]:
    """The (dy, dx) neighbour offsets, dilation by dilation."""
    for d in dilations:
        for dy, dx in _OFFSETS:
            yield dy * d, dx * d


def _shifted(padded: Tensor, pad: int, dy: int, dx: int, h: int,
             w: int) -> Tensor:
    return padded[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w]


@MODELS.register_module()
class PAMR(nn.Module):
    """Pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020, Eq. 3-5).

    Args:
        num_iter (int): Propagation steps.
        dilations (Sequence[int]): Neighbourhood dilations.
        class_chunk (int, optional): Mask channels refined at once (memory
            and speed; the result does not depend on it). None: as many as
            fit in :data:`CHUNK_BYTES` (at least one).
    """

    def __init__(self,
                 num_iter: int = 10,
                 dilations: Sequence[int] = (8, 16),
                 class_chunk: Optional[int] = None):
        super().__init__()
        if num_iter < 0:
            raise ValueError(f'PAMR num_iter must be >= 0, got {num_iter}.')
        dilations = tuple(int(d) for d in dilations)
        if not dilations or min(dilations) < 1:
            raise ValueError(f'PAMR dilations must be positive integers, got '
                             f'{dilations}.')
        if class_chunk is not None and class_chunk < 1:
            raise ValueError(f'PAMR class_chunk must be >= 1, got '
                             f'{class_chunk}.')
        self.num_iter = int(num_iter)
        self.dilations = dilations
        self.class_chunk = class_chunk

    def affinity(self, image: Tensor) -> Tensor:
        """Neighbour affinities ``a(i, j)`` of an image (B, K, H, W).

        Returns:
            Tensor: (B, 8 * len(dilations), H, W), summing to 1 over dim 1.
        """
        _, _, h, w = image.shape
        pad = max(self.dilations)
        padded = F.pad(image, [pad] * 4, mode='replicate')
        windows = []  # 3x3 windows incl. centre, all dilations (for sigma)
        for d in self.dilations:
            for dy in (-d, 0, d):
                for dx in (-d, 0, d):
                    windows.append(_shifted(padded, pad, dy, dx, h, w))
        sigma = torch.stack(windows, dim=2).std(dim=2)  # (B, K, H, W)
        denom = 1e-8 + 0.1 * sigma
        kernel = [
            -(image - _shifted(padded, pad, dy, dx, h, w)).abs() / denom
            for dy, dx in neighbour_offsets(self.dilations)
        ]
        kernel = torch.stack(kernel, dim=2).mean(dim=1)  # (B, P, H, W)
        return F.softmax(kernel, dim=1)

    def propagate(self, masks: Tensor, affinity: Tensor) -> Tensor:
        """``num_iter`` steps of ``m(i) <- sum_j a(i, j) m(j)``."""
        _, _, h, w = masks.shape
        pad = max(self.dilations)
        offsets = list(neighbour_offsets(self.dilations))
        for _ in range(self.num_iter):
            padded = F.pad(masks, [pad] * 4, mode='replicate')
            dy, dx = offsets[0]
            out = affinity[:, :1] * _shifted(padded, pad, dy, dx, h, w)
            for p, (dy, dx) in enumerate(offsets[1:], start=1):
                # in place: no (C, H, W) temporaries per neighbour
                out.addcmul_(affinity[:, p:p + 1],
                             _shifted(padded, pad, dy, dx, h, w))
            masks = out
        return masks

    def forward(self, image: Tensor, masks: Tensor,
                affinity: Optional[Tensor] = None) -> Tensor:
        """Refines masks (B, C, H, W) guided by an image (B, K, H, W).

        ``affinity``, if given, is ``self.affinity(image)`` computed before
        (:meth:`with_guide` shares it between chunks of one image's masks).
        """
        if image.dim() != 4 or masks.dim() != 4 or \
                image.shape[0] != masks.shape[0] or \
                image.shape[2:] != masks.shape[2:]:
            raise ValueError(
                f'PAMR needs an image (B, K, H, W) and masks (B, C, H, W) of '
                f'the same batch and size; got {tuple(image.shape)} and '
                f'{tuple(masks.shape)} (resize the image to the masks first).')
        if affinity is None:
            affinity = self.affinity(image.to(masks.dtype))
        # one class per contiguous plane, so a chunk of classes is one block of
        # memory (channels-last masks, e.g. from a resize, interleave them: 6
        # windows x 150 classes at 224 x 224 in bf16 took 18 s in chunks, 2.9 s
        # contiguous)
        masks = masks.contiguous()
        chunk = self.class_chunk or max(
            1, CHUNK_BYTES // (masks[:, 0].numel() * masks.element_size()))
        return torch.cat([
            self.propagate(masks[:, i:i + chunk], affinity)
            for i in range(0, masks.shape[1], chunk)
        ], dim=1)

    def with_guide(self, image: Tensor) -> Callable[[Tensor], Tensor]:
        """``masks -> self(image, masks)`` for several chunks of masks of the
        same image, its affinity computed once (per dtype) instead of per
        chunk (0.45 s at 512 x 683 on one Intel Xeon thread)."""
        affinities: Dict[torch.dtype, Tensor] = {}

        def refine(masks: Tensor) -> Tensor:
            if masks.dtype not in affinities:
                affinities[masks.dtype] = self.affinity(image.to(masks.dtype))
            return self(image, masks, affinities[masks.dtype])

        return refine
