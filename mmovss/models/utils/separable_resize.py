"""Bilinear upsampling of small maps as two matrix products (CPU fast path).

Bilinear interpolation without antialiasing is separable: resizing a
(C, h, w) map ``X`` to (H, W) gives, per channel, ``R_y X R_x^T`` with the
interpolation matrices ``R_y`` (H, h) and ``R_x`` (W, w), each row holding
the (at most two) weights of the input rows / columns that output row /
column reads. PyTorch's CPU kernel for NCHW maps computes every output pixel
on its own, a few nanoseconds each; for small maps upsampled by a large
factor, such as the 14 x 14 logits of a ViT-B/16 window resized to its
224 x 224 window in sliding-window inference, the two products do fewer
operations than that (``h w / H + h`` multiply-adds per output pixel, 15 for
14 -> 224) and run about 4-6x faster on one core (measured in
docs/benchmarks.md). :func:`resize_bilinear` takes the products where they
are cheap and ``F.interpolate`` otherwise; the two agree within float
rounding (a few 1e-6 for values of order 1: the same weights, computed in
float64 rather than the kernel's float32 and summed in another order).
"""
import functools
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['interpolation_matrix', 'resize_bilinear']

#: Multiply-adds per output pixel up to which :func:`resize_bilinear` uses
#: the two products on CPU (the kernel's per-pixel cost is about that many
#: small-matmul multiply-adds on one core; docs/benchmarks.md).
MAX_PRODUCT_COST = 32


@functools.lru_cache(maxsize=64)
def _matrix(n_in: int, n_out: int, align_corners: bool,
            dtype: torch.dtype) -> Tensor:
    """The CPU matrix in ``dtype``, cached (one per window size and dtype:
    sliding-window inference asks for the same ones at every window)."""
    eye = torch.eye(n_in, dtype=torch.float64)[None]
    # row i of the identity, resized, is the weight input i gives each output
    weights = F.interpolate(eye, size=n_out, mode='linear',
                            align_corners=align_corners)[0]
    return weights.t().contiguous().to(dtype)


def interpolation_matrix(n_in: int, n_out: int, align_corners: bool = False,
                         dtype: torch.dtype = torch.float32,
                         device=None) -> Tensor:
    """The (n_out, n_in) weights of 1-D linear interpolation.

    Built by resizing the identity with ``F.interpolate`` (mode ``'linear'``),
    so it holds exactly PyTorch's weights for these sizes.

    Args:
        n_in (int): Input length.
        n_out (int): Output length.
        align_corners (bool): As in ``F.interpolate``.
        dtype (torch.dtype): Of the matrix.
        device (torch.device, optional): Of the matrix.

    Returns:
        Tensor: ``R`` with ``resize(x) = R @ x`` along that dimension (on
        CPU the cached tensor itself: read it, do not modify it in place).
    """
    matrix = _matrix(int(n_in), int(n_out), bool(align_corners), dtype)
    return matrix if device is None else matrix.to(device)


def _product_cost(in_hw: Tuple[int, int], out_hw: Tuple[int, int]) -> float:
    """Multiply-adds per output pixel of ``R_y (X R_x^T)``."""
    (h, w), (H, W) = in_hw, out_hw
    return (h * w * W + H * h * W) / float(H * W)


def resize_bilinear(x: Tensor, size: Sequence[int],
                    align_corners: bool = False) -> Tensor:
    """``F.interpolate(x, size, mode='bilinear')``, by products where cheap.

    Args:
        x (Tensor): (N, C, h, w) maps.
        size (Sequence[int]): Output (H, W).
        align_corners (bool): As in ``F.interpolate``.

    Returns:
        Tensor: (N, C, H, W) in ``x``'s dtype. On CPU with at most
        :data:`MAX_PRODUCT_COST` multiply-adds per output pixel: the two
        products (in float32 for half-precision maps, then cast back);
        otherwise ``F.interpolate``.
    """
    out_hw = (int(size[0]), int(size[1]))
    in_hw = (int(x.shape[-2]), int(x.shape[-1]))
    if x.dim() != 4 or x.device.type != 'cpu' or \
            _product_cost(in_hw, out_hw) > MAX_PRODUCT_COST:
        return F.interpolate(x, size=out_hw, mode='bilinear',
                             align_corners=align_corners)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else \
        torch.float32
    rows = interpolation_matrix(in_hw[0], out_hw[0], align_corners, dtype)
    cols = interpolation_matrix(in_hw[1], out_hw[1], align_corners, dtype)
    # (N, C, h, w) @ (w, W) -> (N, C, h, W); then (H, h) @ that -> (N, C, H, W)
    out = torch.matmul(rows, torch.matmul(x.to(dtype), cols.t()))
    return out.to(x.dtype)
