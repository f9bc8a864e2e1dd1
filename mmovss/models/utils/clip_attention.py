"""open_clip's ``ResidualAttentionBlock`` through PyTorch's SDPA.

Shared by the image towers (:class:`~mmovss.models.backbones.OpenCLIPViT`
and its subclasses), the text tower
(:class:`~mmovss.models.text_encoders.OpenCLIPTextEncoder`) and the
region classifier (:class:`~mmovss.models.utils.RegionCLIPClassifier`).

open_clip calls ``nn.MultiheadAttention(need_weights=False)``, which in
inference takes PyTorch's fused ``_native_multi_head_attention``; on CPU that
kernel materialises the attention weights and an explicit softmax,
:func:`torch.nn.functional.scaled_dot_product_attention` does not (the result
is the same to float rounding; ``tests/test_fast_paths.py``).
"""
from typing import Optional

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['clip_block']


def _sdpa_ready(block: nn.Module) -> bool:
    """Whether :func:`clip_block` computes ``block`` exactly."""
    attn = getattr(block, 'attn', None)
    return (type(attn) is nn.MultiheadAttention
            and attn._qkv_same_embed_dim and attn.batch_first
            and attn.in_proj_weight is not None and attn.bias_k is None
            and not attn.add_zero_attn
            and (attn.dropout == 0 or not attn.training)
            and not hasattr(block, 'ln_1_kv')
            and all(hasattr(block, n)
                    for n in ('ln_1', 'ln_2', 'mlp', 'ls_1', 'ls_2')))


def clip_block(block: nn.Module, x: Tensor,
               attn_mask: Optional[Tensor] = None) -> Tensor:
    """open_clip's ``ResidualAttentionBlock`` through SDPA.

    ``x + ls_1(O(softmax(q k^T / sqrt(d) + mask) v))`` with ``q, k, v`` the
    per-head projections of ``ln_1(x)``, then ``x + ls_2(mlp(ln_2(x)))``
    (Vaswani et al., NeurIPS 2017, Eq. 1; pre-LN as in CLIP), the softmax
    attention computed by ``F.scaled_dot_product_attention``. Blocks of any
    other form (cross-attention, ``bias_k``, dropout in training, a
    replaced ``attn``) run their own ``forward``.

    Args:
        block (nn.Module): A batch-first open_clip ``ResidualAttentionBlock``.
        x (Tensor): (B, N, C) tokens.
        attn_mask (Tensor, optional): (N, N) additive mask (e.g. the text
            tower's causal mask); cast to the tokens' dtype first, as
            open_clip's block does (a boolean mask thus adds 0/1).
    """
    if not _sdpa_ready(block):
        return block(x) if attn_mask is None else block(x, attn_mask=attn_mask)
    attn = block.attn
    b, n, c = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    if attn_mask is not None:
        attn_mask = attn_mask.to(q.dtype)  # as open_clip's block
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    out = attn.out_proj(out.transpose(1, 2).reshape(b, n, c))
    x = x + block.ls_1(out)
    return x + block.ls_2(block.mlp(block.ln_2(x)))
