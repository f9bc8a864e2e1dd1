"""Multi-scale deformable attention (Deformable DETR, Zhu et al., ICLR 2021).

``MSDA(z_q, p_q, {x_l}) = sum_h W_h [ sum_l sum_k A_{hlqk} W'_h
x_l(phi_l(p_q) + dp_{hlqk}) ]`` (paper Eq. 3): each query samples ``K``
points per level and head around its reference point, bilinearly, and sums
them with softmax-normalised weights.

:func:`multi_scale_deformable_attention` is pure PyTorch
(``grid_sample``), so it runs on CPU and any GPU. When a compiled mmcv with
CUDA ops is installed and the inputs are on a GPU, mmcv's kernel
(``MultiScaleDeformableAttnFunction``) is used instead (same result up to
float rounding); set ``MSDeformAttn.use_compiled = False`` to force the
PyTorch path.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['multi_scale_deformable_attention', 'MSDeformAttn']


def multi_scale_deformable_attention(value: Tensor, spatial_shapes: Tensor,
                                     sampling_locations: Tensor,
                                     attention_weights: Tensor) -> Tensor:
    """Pure-PyTorch multi-scale deformable attention.

    Args:
        value (Tensor): (B, S, heads, d) values of all levels, flattened.
        spatial_shapes (Tensor): (L, 2) (h, w) of each level.
        sampling_locations (Tensor): (B, Nq, heads, L, K, 2) in [0, 1]
            (x, y) normalised coordinates.
        attention_weights (Tensor): (B, Nq, heads, L, K), normalised over
            levels and points.

    Returns:
        Tensor: (B, Nq, heads * d).
    """
    b, _, heads, d = value.shape
    _, nq, _, levels, points, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    value_list = value.split([h * w for h, w in shapes], dim=1)
    # points before queries: grid_sample then returns (B*heads, d, K, Nq), whose
    # K planes are contiguous, so the weighted sum is K multiply-adds over whole
    # planes, accumulated level by level into one output (no stacked copy of
    # every level's samples and no reduction over a trailing dimension of K)
    grids = (2 * sampling_locations - 1).permute(0, 2, 3, 4, 1, 5)  # [-1, 1]
    weights = attention_weights.permute(0, 2, 3, 4, 1).reshape(
        b * heads, 1, levels, points, nq)
    out = None
    for lvl, (h, w) in enumerate(shapes):
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(b * heads, d, h, w)
        sampled = F.grid_sample(v, grids[:, :, lvl].flatten(0, 1), mode='bilinear',
                                padding_mode='zeros', align_corners=False)
        for k in range(points):
            if out is None:
                out = sampled[:, :, k] * weights[:, :, lvl, k]
            else:
                out.addcmul_(sampled[:, :, k], weights[:, :, lvl, k])
    return out.view(b, heads * d, nq).transpose(1, 2).contiguous()


def _compiled_op():
    try:
        from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
        return MultiScaleDeformableAttnFunction
    except Exception:  # mmcv-lite: no compiled ops
        return None


class MSDeformAttn(nn.Module):
    """Multi-scale deformable self-attention module.

    Args:
        embed_dims (int): Channels (256).
        num_heads (int): Heads (8).
        num_levels (int): Feature levels (3).
        num_points (int): Sampling points per head and level (4).
    """

    use_compiled = True

    def __init__(self, embed_dims: int = 256, num_heads: int = 8,
                 num_levels: int = 3, num_points: int = 4):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} must be divisible by '
                             f'num_heads={num_heads}.')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.sampling_offsets = nn.Linear(
            embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims,
                                           num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()

    def init_weights(self):
        """Offsets start on a ring of directions (Deformable DETR init)."""
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (
            2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(
            self.num_heads, 1, 1, 2).repeat(1, self.num_levels,
                                            self.num_points, 1)
        for i in range(self.num_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.view(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def forward(self, query: Tensor, reference_points: Tensor, value: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor,
                padding_mask: Optional[Tensor] = None) -> Tensor:
        """Attends from queries (B, Nq, C) to the flattened levels (B, S, C).

        ``reference_points``: (B, Nq, L, 2) normalised (x, y).
        """
        b, nq, _ = query.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        v = self.value_proj(value)
        if padding_mask is not None:
            v = v.masked_fill(padding_mask[..., None], 0.0)
        v = v.view(b, -1, heads, self.embed_dims // heads)
        offsets = self.sampling_offsets(query).view(b, nq, heads, levels,
                                                    points, 2)
        weights = self.attention_weights(query).view(
            b, nq, heads, levels * points).softmax(-1).view(
                b, nq, heads, levels, points)
        normaliser = torch.stack(
            [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(offsets)
        locations = reference_points[:, :, None, :, None, :] + \
            offsets / normaliser[None, None, None, :, None, :]
        # a low-precision stream (bf16 weights cast once) samples in the
        # float32 of its locations and weights: an 8-bit mantissa would move
        # the points by up to half a pixel on a 160-pixel-wide level
        v = v.to(torch.promote_types(v.dtype, locations.dtype))
        op = _compiled_op() if (self.use_compiled and v.is_cuda) else None
        if op is not None:
            out = op.apply(v, spatial_shapes, level_start_index, locations,
                           weights, 64)
        else:
            out = multi_scale_deformable_attention(v, spatial_shapes,
                                                   locations, weights)
        return self.output_proj(out.to(query.dtype))
