"""Last-block computations of training-free dense CLIP methods.

Each function computes CLIP's last ViT block differently and is registered
with :func:`~mmovss.models.backbones.clip_vit.register_last_block_mode`, so
``OpenCLIPViT(last_block_mode=...)`` (or :class:`TrainingFreeCLIPViT`, which
also passes options such as NACLIP's ``gaussian_std``) selects it by name.

Notation (one block of open_clip, pre-LN): ``y = ln_1(x)``,
``q, k, v = y W_in^T + b_in`` split into ``heads`` heads of width ``d``,
``s = d ** -0.5``, ``O(.)`` the output projection. Tokens are class-first.

==========================  ===================================================
mode                        last block output
==========================  ===================================================
``maskclip``                ``x' = x + O(v)``; ``x' + mlp(ln_2(x'))``
                            (MaskCLIP, Zhou et al., ECCV 2022, Sec. 3.2)
``maskclip_noresidual``     ``O(v)``
``vanilla_noresidual``      ``O(softmax(q k^T s) v)``
``sclip``                   ``x' = x + O((softmax(q q^T s) + softmax(k k^T s))
                            v)``; ``x' + mlp(ln_2(x'))`` (SCLIP, Wang et al.,
                            ECCV 2024, Eq. 5, correlative self-attention)
``clearclip``               ``O(softmax(q q^T s) v)`` (ClearCLIP, Lan et al.,
                            ECCV 2024, Sec. 4: no residual, self-self
                            attention, no FFN)
``naclip``                  ``O(softmax(k k^T s + Omega) v)`` (NACLIP,
                            Hajimiri et al., WACV 2025, Eq. 6-8)
==========================  ===================================================
"""
import math
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .clip_vit import register_last_block_mode

__all__ = [
    'split_heads', 'project_qkv', 'attend', 'neighbourhood_bias',
    'maskclip_block', 'maskclip_noresidual_block', 'vanilla_noresidual_block',
    'sclip_block', 'clearclip_block', 'naclip_block'
]


def _attention_of(block: nn.Module) -> nn.MultiheadAttention:
    attn = getattr(block, 'attn', None)
    if not isinstance(attn, nn.MultiheadAttention) or \
            not getattr(attn, '_qkv_same_embed_dim', False):
        raise TypeError(
            f'Training-free last-block modes need an open_clip '
            f'ResidualAttentionBlock whose `attn` is an nn.MultiheadAttention '
            f'with a packed in_proj_weight; got {type(attn).__name__}. Use '
            f"last_block_mode='vanilla' for this model.")
    return attn


def split_heads(t: Tensor, num_heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    b, n, c = t.shape
    return t.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def project_qkv(block: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-head queries, keys and values of ``ln_1(x)``, each (B, h, N, d)."""
    attn = _attention_of(block)
    y = block.ln_1(x)
    qkv = F.linear(y, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.chunk(3, dim=-1)
    return tuple(split_heads(t, attn.num_heads) for t in (q, k, v))


def attend(block: nn.Module, weights: Optional[Tensor], v: Tensor) -> Tensor:
    """``ls_1(O(weights @ v))`` with heads merged back: (B, N, C).

    Args:
        weights (Tensor, optional): (B, h, N, M) attention weights (or
            broadcastable); None: every token attends only to itself.
        v (Tensor): (B, h, M, d) values.
    """
    out = v if weights is None else torch.matmul(weights, v)
    b, h, n, d = out.shape
    out = out.transpose(1, 2).reshape(b, n, h * d)
    out = block.attn.out_proj(out)
    return block.ls_1(out) if hasattr(block, 'ls_1') else out


def _with_residual_and_mlp(block: nn.Module, x: Tensor,
                           attn_out: Tensor) -> Tensor:
    x = x + attn_out
    mlp = block.mlp(block.ln_2(x))
    return x + (block.ls_2(mlp) if hasattr(block, 'ls_2') else mlp)


def _scaled_softmax(a: Tensor, b: Tensor, scale: float) -> Tensor:
    return F.softmax(torch.matmul(a, b.transpose(-2, -1)) * scale, dim=-1)


@register_last_block_mode('maskclip')
def maskclip_block(block: nn.Module, x: Tensor,
                   grid_hw: Tuple[int, int]) -> Tensor:
    """MaskCLIP: value path only, residual and FFN kept.

    Every token attends only to itself, so the attention output is
    ``O(v)`` (MaskCLIP, Zhou et al., ECCV 2022, Sec. 3.2; as run by the
    ClearCLIP code with ``ignore_residual=False``).
    """
    _, _, v = project_qkv(block, x)
    return _with_residual_and_mlp(block, x, attend(block, None, v))


@register_last_block_mode('maskclip_noresidual')
def maskclip_noresidual_block(block: nn.Module, x: Tensor,
                              grid_hw: Tuple[int, int]) -> Tensor:
    """MaskCLIP's value path ``O(v)`` alone (no residual, no FFN)."""
    _, _, v = project_qkv(block, x)
    return attend(block, None, v)


@register_last_block_mode('vanilla_noresidual')
def vanilla_noresidual_block(block: nn.Module, x: Tensor,
                             grid_hw: Tuple[int, int]) -> Tensor:
    """CLIP's attention ``O(softmax(q k^T s) v)`` alone (no residual, FFN)."""
    q, k, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    return attend(block, _scaled_softmax(q, k, scale), v)


@register_last_block_mode('sclip')
def sclip_block(block: nn.Module, x: Tensor,
                grid_hw: Tuple[int, int]) -> Tensor:
    """SCLIP's correlative self-attention, residual and FFN kept.

    ``A = softmax(q q^T s) + softmax(k k^T s)`` (the two softmaxes summed,
    not renormalised; SCLIP, Wang et al., ECCV 2024, Eq. 5).
    """
    q, k, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    weights = _scaled_softmax(q, q, scale) + _scaled_softmax(k, k, scale)
    return _with_residual_and_mlp(block, x, attend(block, weights, v))


@register_last_block_mode('clearclip')
def clearclip_block(block: nn.Module, x: Tensor,
                    grid_hw: Tuple[int, int]) -> Tensor:
    """ClearCLIP: ``O(softmax(q q^T s) v)``, no residual, no FFN.

    (Lan et al., ECCV 2024, Sec. 4.)
    """
    q, _, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    return attend(block, _scaled_softmax(q, q, scale), v)


@lru_cache(maxsize=16)
def _neighbourhood_bias_cpu(h: int, w: int, std: float) -> Tensor:
    constant = 1.0 / (std * math.sqrt(2.0))
    rows = torch.arange(h, dtype=torch.float32).repeat_interleave(w)
    cols = torch.arange(w, dtype=torch.float32).repeat(h)
    dr = (rows[:, None] - rows[None, :]) * constant
    dc = (cols[:, None] - cols[None, :]) * constant
    bias = torch.zeros(h * w + 1, h * w + 1)
    bias[1:, 1:] = torch.exp(-(dr * dr + dc * dc))
    return bias


def neighbourhood_bias(grid_hw: Tuple[int, int], std: float,
                       device=None, dtype=None) -> Tensor:
    """NACLIP's Gaussian neighbourhood bias ``Omega`` (1 + h*w, 1 + h*w).

    ``Omega[p, p'] = exp(-((r - r')^2 + (c - c')^2) / (2 std^2))`` for patches
    ``p = (r, c)`` and ``p' = (r', c')`` of the grid, unnormalised, and 0 in
    the class token's row and column (Hajimiri et al., WACV 2025, Eq. 7).
    """
    if not std > 0:
        raise ValueError(f'NACLIP gaussian_std must be > 0, got {std}.')
    h, w = (int(s) for s in grid_hw)
    return _neighbourhood_bias_cpu(h, w, float(std)).to(device=device,
                                                         dtype=dtype)


@register_last_block_mode('naclip')
def naclip_block(block: nn.Module, x: Tensor, grid_hw: Tuple[int, int],
                 gaussian_std: float = 5.0) -> Tensor:
    """NACLIP: ``O(softmax(k k^T s + Omega) v)``, no residual, no FFN.

    Key-key similarity plus the Gaussian neighbourhood bias of
    :func:`neighbourhood_bias` (Hajimiri et al., WACV 2025, Eq. 6-8; the
    ``reduced`` architecture of the paper, Sec. 3.3).

    Args:
        gaussian_std (float): Standard deviation of the Gaussian, in patches.
    """
    _, k, v = project_qkv(block, x)
    scale = k.shape[-1]**-0.5
    if k.shape[2] != grid_hw[0] * grid_hw[1] + 1:
        raise ValueError(
            f'naclip: {k.shape[2]} tokens do not match a {grid_hw} patch grid '
            f'plus the class token.')
    omega = neighbourhood_bias(grid_hw, gaussian_std, k.device, k.dtype)
    logits = torch.matmul(k, k.transpose(-2, -1)) * scale + omega
    return attend(block, F.softmax(logits, dim=-1), v)
