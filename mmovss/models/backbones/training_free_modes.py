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

Modes that also use earlier blocks (ResCLIP's ``resclip``, SC-CLIP's
``scclip``) are in :mod:`.resclip_mode` and :mod:`.scclip_mode`; they
receive the tower's state through :mod:`.tower_context`.

Fast path: every ``softmax(a b^T s + M) v`` above is computed by
:func:`torch.nn.functional.scaled_dot_product_attention` (``SDPA(a, b, v,
attn_mask=M, scale=s)``), which never materialises the attention weights
(flash/fused kernels on CPU and GPU): ClearCLIP is ``SDPA(q, q, v)``, NACLIP
``SDPA(k, k, v, attn_mask=Omega)`` with ``Omega`` as an additive float
mask, SCLIP ``SDPA(q, q, v) + SDPA(k, k, v)`` (the product distributes over
the sum of the two softmaxes), ``vanilla_noresidual`` ``SDPA(q, k, v)``;
the MaskCLIP modes need no attention and project only the values. The
written-out formulas (weights materialised) run inside
:func:`explicit_attention`; both agree to float rounding (about 1e-6 in
float32, ``tests/test_fast_paths.py``). CLIP's ordinary blocks (and the
``vanilla`` mode) run through :func:`~mmovss.models.utils.clip_attention.
clip_block`, SDPA as well: open_clip's own ``nn.MultiheadAttention(
need_weights=False)`` takes PyTorch's fused ``_native_multi_head_attention``
in inference, which on CPU materialises the weights and a softmax.
"""
import math
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .clip_vit import register_last_block_mode

__all__ = [
    'split_heads', 'project_qkv', 'project_v', 'attend', 'merge_heads',
    'softmax_attention', 'explicit_attention', 'neighbourhood_bias',
    'with_residual_and_mlp', 'maskclip_block', 'maskclip_noresidual_block',
    'vanilla_noresidual_block', 'sclip_block', 'clearclip_block', 'naclip_block'
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


def project_v(block: nn.Module, x: Tensor) -> Tensor:
    """Per-head values of ``ln_1(x)`` only, (B, h, N, d).

    The value rows of the packed projection, so the queries and keys that
    MaskCLIP does not use are not computed.
    """
    attn = _attention_of(block)
    c = attn.embed_dim
    bias = attn.in_proj_bias
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * c:],
                 None if bias is None else bias[2 * c:])
    return split_heads(v, attn.num_heads)


_EXPLICIT = [False]


@contextmanager
def explicit_attention(enabled: bool = True) -> Iterator[None]:
    """Runs :func:`softmax_attention` with written-out weights.

    Inside the context the attention of the training-free modes is computed
    as ``softmax(a b^T s + M) @ v`` with the (B, h, N, M) weights
    materialised (the formulas of the papers, e.g. to inspect them), instead
    of :func:`torch.nn.functional.scaled_dot_product_attention`.
    """
    previous = _EXPLICIT[0]
    _EXPLICIT[0] = bool(enabled)
    try:
        yield
    finally:
        _EXPLICIT[0] = previous


def softmax_attention(a: Tensor, b: Tensor, v: Tensor, scale: float,
                      bias: Optional[Tensor] = None) -> Tensor:
    """``softmax(a b^T * scale + bias) v`` per head: (B, h, N, d).

    Computed by ``F.scaled_dot_product_attention(a, b, v, attn_mask=bias,
    scale=scale)`` (an additive float mask; no weights are materialised),
    or written out inside :func:`explicit_attention`.

    Args:
        a (Tensor): (B, h, N, d) queries (``q`` or ``k`` for the
            self-self attentions of SCLIP, ClearCLIP and NACLIP).
        b (Tensor): (B, h, M, d) keys.
        v (Tensor): (B, h, M, d) values.
        scale (float): ``s`` (``d ** -0.5`` in all modes).
        bias (Tensor, optional): (N, M) additive bias (NACLIP's Omega).
    """
    if bias is not None:
        bias = bias.to(dtype=a.dtype, device=a.device)
    if _EXPLICIT[0]:
        logits = torch.matmul(a, b.transpose(-2, -1)) * scale
        if bias is not None:
            logits = logits + bias
        weights = F.softmax(logits, dim=-1, dtype=torch.float32)
        return torch.matmul(weights.to(v.dtype), v)
    return F.scaled_dot_product_attention(a, b, v, attn_mask=bias,
                                          scale=scale)


def merge_heads(block: nn.Module, out: Tensor) -> Tensor:
    """``ls_1(O(out))`` with heads merged back: (B, h, N, d) -> (B, N, C)."""
    b, h, n, d = out.shape
    out = out.transpose(1, 2).reshape(b, n, h * d)
    out = block.attn.out_proj(out)
    return block.ls_1(out) if hasattr(block, 'ls_1') else out


def attend(block: nn.Module, weights: Optional[Tensor], v: Tensor) -> Tensor:
    """``ls_1(O(weights @ v))`` with heads merged back: (B, N, C).

    For attentions whose weights are needed explicitly (ProxyCLIP's
    thresholded proxy attention); the modes use :func:`softmax_attention`.

    Args:
        weights (Tensor, optional): (B, h, N, M) attention weights (or
            broadcastable); None: every token attends only to itself.
        v (Tensor): (B, h, M, d) values.
    """
    out = v if weights is None else torch.matmul(weights, v)
    return merge_heads(block, out)


def with_residual_and_mlp(block: nn.Module, x: Tensor,
                          attn_out: Tensor) -> Tensor:
    """The rest of a CLIP block: ``x' = x + attn_out``, then
    ``x' + ls_2(mlp(ln_2(x')))``."""
    x = x + attn_out
    mlp = block.mlp(block.ln_2(x))
    return x + (block.ls_2(mlp) if hasattr(block, 'ls_2') else mlp)


@register_last_block_mode('maskclip')
def maskclip_block(block: nn.Module, x: Tensor,
                   grid_hw: Tuple[int, int]) -> Tensor:
    """MaskCLIP: value path only, residual and FFN kept.

    Every token attends only to itself, so the attention output is
    ``O(v)`` (MaskCLIP, Zhou et al., ECCV 2022, Sec. 3.2; as run by the
    ClearCLIP code with ``ignore_residual=False``).
    """
    v = project_v(block, x)
    return with_residual_and_mlp(block, x, merge_heads(block, v))


@register_last_block_mode('maskclip_noresidual')
def maskclip_noresidual_block(block: nn.Module, x: Tensor,
                              grid_hw: Tuple[int, int]) -> Tensor:
    """MaskCLIP's value path ``O(v)`` alone (no residual, no FFN)."""
    return merge_heads(block, project_v(block, x))


@register_last_block_mode('vanilla_noresidual')
def vanilla_noresidual_block(block: nn.Module, x: Tensor,
                             grid_hw: Tuple[int, int]) -> Tensor:
    """CLIP's attention ``O(softmax(q k^T s) v)`` alone (no residual, FFN)."""
    q, k, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    return merge_heads(block, softmax_attention(q, k, v, scale))


@register_last_block_mode('sclip')
def sclip_block(block: nn.Module, x: Tensor,
                grid_hw: Tuple[int, int]) -> Tensor:
    """SCLIP's correlative self-attention, residual and FFN kept.

    ``A = softmax(q q^T s) + softmax(k k^T s)`` (the two softmaxes summed,
    not renormalised; SCLIP, Wang et al., ECCV 2024, Eq. 5).
    """
    q, k, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    # (softmax(q q^T s) + softmax(k k^T s)) v, one SDPA per softmax
    out = softmax_attention(q, q, v, scale) + softmax_attention(k, k, v, scale)
    return with_residual_and_mlp(block, x, merge_heads(block, out))


@register_last_block_mode('clearclip')
def clearclip_block(block: nn.Module, x: Tensor,
                    grid_hw: Tuple[int, int]) -> Tensor:
    """ClearCLIP: ``O(softmax(q q^T s) v)``, no residual, no FFN.

    (Lan et al., ECCV 2024, Sec. 4.)
    """
    q, _, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    return merge_heads(block, softmax_attention(q, q, v, scale))


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
    return merge_heads(block, softmax_attention(k, k, v, scale, omega))
