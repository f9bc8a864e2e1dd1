"""Multi-scale deformable attention (Deformable DETR, Zhu et al., ICLR 2021).

``MSDA(z_q, p_q, {x_l}) = sum_h W_h [ sum_l sum_k A_{hlqk} W'_h
x_l(phi_l(p_q) + dp_{hlqk}) ]`` (paper Eq. 3): each query samples ``K``
points per level and head around its reference point, bilinearly, and sums
them with softmax-normalised weights.

:func:`multi_scale_deformable_attention` is pure PyTorch, so it runs on CPU
and any GPU. In inference the bilinear samples of all levels and points and
their weighted sum are one ``embedding_bag`` over the value rows
(:func:`bilinear_sample_bags`; equal to the reference path up to float
rounding, 1.6x faster per layer at FC-CLIP's size on CPU); where gradients
are needed (training) the reference path runs,
:func:`grid_sample_deformable_attention` (``grid_sample`` per level and a
weighted sum per point), whose backward is faster at training sizes. When a compiled mmcv with
CUDA ops is installed and the inputs are on a GPU, mmcv's kernel
(``MultiScaleDeformableAttnFunction``) is used instead (same result up to
float rounding); set ``MSDeformAttn.use_compiled = False`` to force the
PyTorch path.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['bilinear_sample_bags', 'grid_sample_deformable_attention',
           'multi_scale_deformable_attention', 'MSDeformAttn']


#: Corners of a bilinear sample: (row offset, column offset).
_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))
#: Value rows (B x S x heads) :func:`bilinear_sample_bags` can number: its
#: row numbers are computed exactly in float32.
MAX_BAG_ROWS = 2 ** 24


def _level_sizes(spatial_shapes: Tensor, like: Tensor):
    """``[(h, w), ...]`` of the levels and their (L, 2) ``(w, h)`` sizes as a
    tensor of ``like``'s dtype and device (normalised (x, y) -> pixels)."""
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    size = torch.tensor([[w, h] for h, w in shapes], dtype=like.dtype, device=like.device)
    return shapes, size


def bilinear_sample_bags(value: Tensor, shapes: Sequence[Tuple[int, int]],
                         pixel_x: Tensor, pixel_y: Tensor,
                         weights: Tensor) -> Tensor:
    """Weighted sums of bilinear samples of every level, as one gather.

    Each query and head samples ``L x K`` points; each sample is the
    bilinear mix of four neighbouring pixels, zero outside the map
    (``grid_sample`` with ``padding_mode='zeros'``, ``align_corners=False``).
    So the output of a (query, head) is a sum of ``4 L K`` value rows, each
    weighted by its corner's bilinear weight times the point's attention
    weight: one ``embedding_bag`` (``mode='sum'``, per-sample weights) over
    the value rows, which reads each row's channels contiguously, instead
    of a ``grid_sample`` per level and a weighted sum per point.

    Args:
        value (Tensor): (B, S, heads, d) values of all levels, flattened.
        shapes (Sequence[tuple[int, int]]): (h, w) of each level.
        pixel_x (Tensor): (B, heads, L, K, Nq) column coordinates in pixels
            (the centre of column ``i`` at ``i``).
        pixel_y (Tensor): (B, heads, L, K, Nq) row coordinates.
        weights (Tensor): (B, heads, L, K, Nq) attention weights.

    Returns:
        Tensor: (B, Nq, heads * d).
    """
    b, s, heads, d = value.shape
    _, _, levels, points, nq = weights.shape
    if b * heads * s >= MAX_BAG_ROWS:
        raise ValueError(f'deformable attention over {b * s * heads} value rows: fewer than '
                         f'{MAX_BAG_ROWS} (use a smaller batch or input).')
    device = weights.device
    # rows of one (image, head) together: its bags read a block of S rows
    rows = value.permute(0, 2, 1, 3).reshape(b * heads * s, d)
    first = (torch.arange(b * heads, device=device) * s).view(b, heads, 1, 1).to(pixel_x.dtype)
    index = torch.empty(b, heads, len(_CORNERS), levels, points, nq, dtype=torch.int32,
                        device=device)
    bag_weights = weights.new_empty(b, heads, len(_CORNERS), levels, points, nq)
    start = 0
    for lvl, (h, w) in enumerate(shapes):
        x, y = pixel_x[:, :, lvl], pixel_y[:, :, lvl]
        x0, y0 = x.floor(), y.floor()
        fx, fy = x - x0, y - y0
        # per axis, for the lower and the upper neighbour: its bilinear weight
        # (zero outside the map) and its clamped coordinate
        cols = [((1 - fx) * ((x0 >= 0) & (x0 <= w - 1)), x0.clamp(0, w - 1)),
                (fx * ((x0 >= -1) & (x0 <= w - 2)), (x0 + 1).clamp(0, w - 1))]
        a, base = weights[:, :, lvl], first + start
        rows_at = [((1 - fy) * a * ((y0 >= 0) & (y0 <= h - 1)),
                    y0.clamp(0, h - 1) * w + base),
                   (fy * a * ((y0 >= -1) & (y0 <= h - 2)),
                    (y0 + 1).clamp(0, h - 1) * w + base)]
        for c, (dy, dx) in enumerate(_CORNERS):
            bag_weights[:, :, c, lvl] = cols[dx][0] * rows_at[dy][0]
            index[:, :, c, lvl] = cols[dx][1] + rows_at[dy][1]
        start += h * w
    k = len(_CORNERS) * levels * points
    # one bag per (image, head, query)
    index = index.view(b * heads, k, nq).transpose(1, 2).reshape(b * heads * nq, k)
    bag_weights = bag_weights.view(b * heads, k, nq).transpose(1, 2).reshape(
        b * heads * nq, k)
    out = F.embedding_bag(index, rows, per_sample_weights=bag_weights.to(rows.dtype),
                          mode='sum')
    return out.view(b, heads, nq, d).permute(0, 2, 1, 3).reshape(b, nq, heads * d)


def needs_grad(*tensors: Tensor) -> bool:
    """Whether autograd will record an operation on these tensors."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def use_bags(value: Tensor, *tensors: Tensor) -> bool:
    """Whether :func:`bilinear_sample_bags` serves: inference (no gradients)
    and fewer than :data:`MAX_BAG_ROWS` value rows (B x S x heads)."""
    b, s, heads, _ = value.shape
    return not needs_grad(value, *tensors) and b * s * heads < MAX_BAG_ROWS


def grid_sample_deformable_attention(value: Tensor, spatial_shapes: Tensor,
                                     sampling_locations: Tensor,
                                     attention_weights: Tensor) -> Tensor:
    """Multi-scale deformable attention by ``grid_sample`` per level (the
    reference path, used where gradients are needed: its backward is faster
    than ``embedding_bag``'s at training sizes).

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


def multi_scale_deformable_attention(value: Tensor, spatial_shapes: Tensor,
                                     sampling_locations: Tensor,
                                     attention_weights: Tensor) -> Tensor:
    """Pure-PyTorch multi-scale deformable attention: by
    :func:`bilinear_sample_bags` of the locations in pixels in inference
    (:func:`use_bags`), else by :func:`grid_sample_deformable_attention`,
    whose arguments and result it has.
    """
    if not use_bags(value, sampling_locations, attention_weights):
        return grid_sample_deformable_attention(value, spatial_shapes, sampling_locations,
                                                attention_weights)
    shapes, size = _level_sizes(spatial_shapes, sampling_locations)
    # normalised -> pixels (grid_sample's align_corners=False: x W - 0.5)
    pixels = (sampling_locations * size[:, None] - 0.5).permute(0, 2, 3, 4, 5, 1)
    return bilinear_sample_bags(value, shapes, pixels[..., 0, :], pixels[..., 1, :],
                                attention_weights.permute(0, 2, 3, 4, 1))


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
        offsets = self.sampling_offsets(query)
        logits = self.attention_weights(query)
        # a low-precision stream (bf16 weights cast once) samples in the
        # float32 of its locations and weights: an 8-bit mantissa would move
        # the points by up to half a pixel on a 160-pixel-wide level
        v = v.to(torch.promote_types(v.dtype, offsets.dtype))
        op = _compiled_op() if (self.use_compiled and v.is_cuda) else None
        if op is not None or not use_bags(v, offsets, logits):
            offsets = offsets.view(b, nq, heads, levels, points, 2)
            weights = logits.view(b, nq, heads, levels * points).softmax(-1).view(
                b, nq, heads, levels, points)
            normaliser = torch.stack(
                [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1).to(offsets)
            locations = reference_points[:, :, None, :, None, :] + \
                offsets / normaliser[None, None, None, :, None, :]
            if op is not None:
                out = op.apply(v, spatial_shapes, level_start_index, locations,
                               weights, 64)
            else:
                out = grid_sample_deformable_attention(v, spatial_shapes, locations,
                                                       weights)
        else:  # inference
            out = self.sample(v, spatial_shapes, reference_points, offsets, logits)
        return self.output_proj(out.to(query.dtype))

    def sample(self, value: Tensor, spatial_shapes: Tensor, reference_points: Tensor,
               offsets: Tensor, logits: Tensor) -> Tensor:
        """The pure-PyTorch attention (:func:`bilinear_sample_bags`) from the
        linear layers' outputs, with queries as the last (contiguous) axis:
        the softmax over ``L x K`` and the locations in pixels
        (``p_q W_l - 0.5 + dp``, the same point as
        :func:`multi_scale_deformable_attention`'s ``(p_q + dp / W_l) W_l - 0.5``)
        are then computed on whole rows of queries.

        Args:
            value (Tensor): (B, S, heads, d).
            spatial_shapes (Tensor): (L, 2) (h, w) of each level.
            reference_points (Tensor): (B, Nq, L, 2) normalised (x, y).
            offsets (Tensor): (B, Nq, heads * L * K * 2) sampling offsets in
                pixels of each level.
            logits (Tensor): (B, Nq, heads * L * K) attention logits.

        Returns:
            Tensor: (B, Nq, heads * d).
        """
        b, nq, _ = offsets.shape
        heads, levels, points = self.num_heads, self.num_levels, self.num_points
        offsets = offsets.transpose(1, 2).reshape(b, heads, levels, points, 2, nq)
        weights = logits.transpose(1, 2).reshape(b, heads, levels * points, nq).softmax(2)
        shapes, size = _level_sizes(spatial_shapes, offsets)
        refs = (reference_points.to(offsets.dtype) * size - 0.5).permute(0, 2, 3, 1)
        refs = refs[:, None, :, None]  # (B, 1, L, 1, 2, Nq)
        # x and y as separate contiguous planes (the sampling reads each often)
        x, y = (offsets[..., i, :] + refs[..., i, :] for i in range(2))
        return bilinear_sample_bags(value, shapes, x, y,
                                    weights.view(b, heads, levels, points, nq))
