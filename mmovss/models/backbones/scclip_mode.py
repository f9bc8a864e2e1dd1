"""SC-CLIP's last block: anomaly resolution, self-adjustment, multi-level fusion.

Bai, Liu, Han, Zhang, Tang, *Self-Calibrated CLIP for Training-Free
Open-Vocabulary Segmentation*, arXiv 2411.15869; reference code
github.com/SuleBai/SC-CLIP @ 0417ba9 (``clip/model.py``,
``VisionTransformer.forward``). With ``F_l`` the output of ordinary block
``l`` (0-based; ``F_(L-2)`` enters the last block) and ``norm`` the L2
normalisation per token, what SC-CLIP changes:

1. **Anomaly tokens** (the paper's first component): patch tokens of
   ``F_(L-2)`` with a high local outlier factor (:func:`local_outlier_factor`,
   ``k = 30``, top 5 %) are replaced by the mean of their non-anomalous
   8-neighbours (:func:`fix_anomalies`), in ``F_(L-2)`` and in ``F_pre``.
2. **Self-adjustment** with intermediate features (second component):
   ``Mid = norm(fix(F_pre)) norm(fix(F_pre))^T``; features are aggregated
   with ``agg(X, C) = (C / (rowsum C + 1e-6)) X`` over correlations
   thresholded at ``beta`` (``Mid`` before, ``norm(F_post) norm(F_post)^T``
   after the last block), and the last block's attention is
   ``0.5 (softmax(G) + softmax(k k^T s))`` with ``G = 3 (Mid - mean Mid)``,
   negative entries ``-inf`` (:func:`scclip_attention`), on patch tokens
   only, no residual, no FFN; the class token of ``F_(L-2)`` is added back
   scaled by ``res_cls``.
3. **Multi-level fusion** (third component): the same attention and
   aggregation applied to ``sum_{l = ms}^{me - 1} F_l`` is added.

The formulas are written from the reference code (the paper's section and
equation numbers could not be re-checked offline: no network access); the
parity fixtures (``tests/test_parity_resclip_scclip.py``) pin them to the
code's outputs. The code indexes anomalies as ``(i // h_grid, i % h_grid)``,
which equals the row-major ``(i // w, i % w)`` used here on square grids
(all its sliding windows); on other grids this module uses the row-major
position.

The block returns (B, 1 + h*w, C) tokens as every mode; SC-CLIP computes no
class token, so the first token is the input's, passed through (the
backbone drops it). Recorded stages (:func:`~.tower_context.record_stages`):
``'scclip.lof_scores'`` (B, h*w), ``'scclip.anomalies'`` (B, h*w) bool.
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .clip_vit import register_last_block_mode
from .tower_context import ContextRequest, TowerContext, check_block_index, register_context_request
from .training_free_modes import merge_heads, project_qkv, softmax_attention

__all__ = [
    'scclip_block', 'local_outlier_factor', 'fix_anomalies', 'aggregate',
    'scclip_attention'
]


def _squared_distances(z: Tensor, max_elements: int = 2**24) -> Tensor:
    """``||z_i - z_j||^2`` (N, N), computed as the code does, row chunks."""
    n, c = z.shape
    rows = max(1, max_elements // max(1, n * c))
    return torch.cat([
        torch.norm(z[i:i + rows, None] - z[None], dim=2, p=2)**2
        for i in range(0, n, rows)
    ])


def local_outlier_factor(z: Tensor, n_neighbors: int = 30,
                         contamination: float = 0.05
                         ) -> Tuple[Tensor, Tensor]:
    """SC-CLIP's local-outlier-factor scores and anomalies of tokens (N, C).

    ``D_ij = ||z_i - z_j||^2``; ``N(i)`` = the ``k`` nearest tokens after
    dropping the first (self), ``kd_i`` the largest of their distances. The
    reach distance ``max(D_ij, kd_i)`` uses the query's own k-distance (as
    the code's ``lof_pytorch``), so ``lrd_i = k / kd_i``;
    ``lof_i = mean_{j in N(i)} lrd_j / lrd_i``. Anomalies:
    ``lof_i > quantile(lof, 1 - contamination)`` (linear interpolation).
    ``k`` is reduced to ``N - 1`` on smaller grids.

    Returns:
        tuple[Tensor, Tensor]: (N,) bool anomalies and (N,) scores.
    """
    n = z.shape[0]
    k = min(int(n_neighbors), n - 1)
    if k < 1:
        scores = z.new_ones(n)
        return torch.zeros(n, dtype=torch.bool, device=z.device), scores
    distances = _squared_distances(z)
    knn_dist, knn_index = torch.topk(distances, k=k + 1, largest=False)
    knn_dist, knn_index = knn_dist[:, 1:], knn_index[:, 1:]
    k_dist = knn_dist[:, -1].unsqueeze(1).expand_as(knn_dist)
    reach = torch.max(knn_dist, k_dist)
    lrd = k / torch.nan_to_num(reach.mean(dim=1), nan=1e-6)
    scores = (lrd[knn_index] / lrd.unsqueeze(1)).mean(dim=1)
    threshold = torch.quantile(scores.to(torch.float32), 1 - contamination)
    return scores > threshold, scores


def fix_anomalies(patches: Tensor, anomalies: Tensor,
                  grid_hw: Tuple[int, int]) -> Tensor:
    """Replaces anomalous tokens by the mean of their normal 8-neighbours.

    An anomaly without a normal neighbour inside the grid is kept (the
    code's ``mean_interpolation``).

    Args:
        patches (Tensor): (B, h*w, C) patch tokens, row-major.
        anomalies (Tensor): (B, h*w) bool.

    Returns:
        Tensor: (B, h*w, C).
    """
    b, n, c = patches.shape
    h, w = grid_hw
    maps = patches.transpose(1, 2).reshape(b, c, h, w)
    normal = (~anomalies).to(patches.dtype).view(b, 1, h, w)
    kernel = patches.new_ones(1, 1, 3, 3)
    kernel[..., 1, 1] = 0
    total = F.conv2d(F.pad(maps * normal, (1, 1, 1, 1)),
                     kernel.expand(c, 1, 3, 3), groups=c)
    count = F.conv2d(F.pad(normal, (1, 1, 1, 1)), kernel)
    mean = total / count.clamp(min=1)
    update = anomalies.view(b, 1, h, w) & (count > 0)
    fixed = torch.where(update, mean, maps)
    return fixed.reshape(b, c, n).transpose(1, 2)


def aggregate(x: Tensor, corr: Tensor) -> Tensor:
    """``agg(X, C) = (C / (rowsum C + 1e-6)) X`` for (B, N, C) tokens."""
    return torch.matmul(corr / (corr.sum(dim=-1, keepdim=True) + 1e-6), x)


def _thresholded(corr: Tensor, beta: float) -> Tensor:
    return corr.masked_fill(corr < beta, 0.0)


def _cosine(x: Tensor) -> Tensor:
    x = x / x.norm(dim=-1, keepdim=True)
    return torch.matmul(x, x.transpose(-2, -1))


def scclip_attention(block: nn.Module, z: Tensor, mid: Tensor) -> Tensor:
    """``O(0.5 (softmax(G) + softmax(k k^T s)) v)`` on patch tokens.

    ``G = 3 (Mid - mean(Mid))`` (mean over all entries per image) with
    negative entries set to ``-inf``, shared by all heads; ``q, k, v`` from
    ``ln_1(z)`` (the code's ``custom_attn``).

    Args:
        z (Tensor): (B, N, C) patch tokens (no class token).
        mid (Tensor): (B, N, N) ``Mid``.
    """
    _, k, v = project_qkv(block, z)
    g = (mid - mid.mean(dim=(1, 2), keepdim=True)) * 3.0
    g = g.masked_fill(g < 0, float('-inf'))
    guided = torch.matmul(torch.softmax(g, dim=-1)[:, None].to(v), v)
    keys = softmax_attention(k, k, v, k.shape[-1]**-0.5)
    return merge_heads(block, 0.5 * (guided + keys))


def _indices(num_blocks: int, pre_adjust_idx: int, post_adjust_idx: int,
             multi_start_idx: int, multi_end_idx: int):
    pre = check_block_index(pre_adjust_idx, num_blocks, 'pre_adjust_idx')
    post = check_block_index(post_adjust_idx, num_blocks, 'post_adjust_idx')
    start = check_block_index(multi_start_idx, num_blocks, 'multi_start_idx')
    if not start < multi_end_idx <= num_blocks - 1:
        raise ValueError(
            f'scclip: multi_end_idx={multi_end_idx} must be in '
            f'({start}, {num_blocks - 1}] (an exclusive end after '
            f'multi_start_idx={multi_start_idx}) for this {num_blocks}-block '
            f'ViT.')
    return pre, post, range(start, int(multi_end_idx))


@register_context_request('scclip')
def scclip_request(num_blocks: int, pre_adjust_idx: int = 8,
                   post_adjust_idx: int = 3, multi_start_idx: int = 3,
                   multi_end_idx: int = 10, **_) -> ContextRequest:
    """Keeps ``F_pre``, ``F_post`` and ``F_ms .. F_(me-1)``."""
    pre, post, multi = _indices(num_blocks, pre_adjust_idx, post_adjust_idx,
                                multi_start_idx, multi_end_idx)
    return ContextRequest(outputs=frozenset({pre, post, *multi}))


@register_last_block_mode('scclip')
def scclip_block(block: nn.Module, x: Tensor, grid_hw: Tuple[int, int],
                 context: Optional[TowerContext] = None,
                 pre_adjust_idx: int = 8,
                 post_adjust_idx: int = 3,
                 multi_start_idx: int = 3,
                 multi_end_idx: int = 10,
                 res_cls: float = 0.3,
                 beta: float = 0.4,
                 lof_neighbors: int = 30,
                 lof_contamination: float = 0.05) -> Tensor:
    """SC-CLIP's last block (see the module docstring).

    Args:
        context (TowerContext): Given by the backbone (block outputs).
        pre_adjust_idx (int): ``F_pre``, whose correlations guide the
            attention and the first aggregation (ViT-B/16: 8).
        post_adjust_idx (int): ``F_post``, whose correlations aggregate
            after the attention (ViT-B/16: 3).
        multi_start_idx, multi_end_idx (int): Blocks ``[ms, me)`` summed for
            the multi-level fusion (ViT-B/16: 3, 10).
        res_cls (float): Weight of the class token added back.
        beta (float): Correlation threshold of the aggregations.
        lof_neighbors (int): ``k`` of the outlier factor.
        lof_contamination (float): Fraction of tokens taken as anomalies.
    """
    if context is None:
        raise RuntimeError('scclip needs the tower context; run it through '
                           'TrainingFreeCLIPViT.')
    if not 0 < lof_contamination < 1:
        raise ValueError(f'scclip: lof_contamination must be in (0, 1), got '
                         f'{lof_contamination}.')
    if x.shape[1] != grid_hw[0] * grid_hw[1] + 1:
        raise ValueError(f'scclip: {x.shape[1]} tokens do not match a '
                         f'{grid_hw} patch grid plus the class token.')
    num_blocks = len(context.tower.visual.transformer.resblocks)
    pre, post, multi = _indices(num_blocks, pre_adjust_idx, post_adjust_idx,
                                multi_start_idx, multi_end_idx)
    found = [local_outlier_factor(p, lof_neighbors, lof_contamination)
             for p in x[:, 1:]]
    anomalies = torch.stack([a for a, _ in found])
    context.record('scclip.anomalies', anomalies)
    context.record('scclip.lof_scores', torch.stack([s for _, s in found]))
    cls_token = x[:, :1]
    z = fix_anomalies(x[:, 1:], anomalies, grid_hw)
    mid = _cosine(fix_anomalies(context.outputs[pre][:, 1:], anomalies,
                                grid_hw))
    z = aggregate(z, _thresholded(mid, beta))
    z = scclip_attention(block, z, mid) + res_cls * cls_token
    after = _thresholded(_cosine(context.outputs[post][:, 1:]), beta)
    z = aggregate(z, after)
    fused = torch.zeros_like(x)
    for i in multi:
        fused = fused + context.outputs[i]
    fused = scclip_attention(block, fused[:, 1:], mid) + \
        res_cls * fused[:, :1]
    z = z + aggregate(fused, after)
    return torch.cat([cls_token, z], dim=1)
