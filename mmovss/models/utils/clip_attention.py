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

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ['clip_block', 'clip_mlp', 'QUICK_GELU_SCALE']


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
    replaced ``attn``) run their own ``forward``. The MLP runs through
    :func:`clip_mlp`.

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
    return x + block.ls_2(clip_mlp(block.mlp, block.ln_2(x)))


def _has_hooks(*modules: nn.Module) -> bool:
    from torch.nn.modules import module as module_mod
    if module_mod._global_forward_hooks or module_mod._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


#: QuickGELU's constant (``x * sigmoid(1.702 x)``, OpenAI CLIP).
QUICK_GELU_SCALE = 1.702


def foldable_quick_gelu_mlp(mlp: nn.Module) -> bool:
    """Whether ``mlp`` is open_clip's ``c_fc`` -> QuickGELU -> ``c_proj``
    MLP, whose constant 1.702 can go into its weights."""
    return (isinstance(mlp, nn.Sequential) and len(mlp) == 3 and
            type(getattr(mlp, 'gelu', None)).__name__ == 'QuickGELU' and
            isinstance(getattr(mlp, 'c_fc', None), nn.Linear) and
            isinstance(getattr(mlp, 'c_proj', None), nn.Linear))


def clip_mlp(mlp: nn.Module, x: Tensor) -> Tensor:
    """``mlp(x)`` of an open_clip block; a QuickGELU MLP with one elementwise pass.

    ``c_proj(h * sigmoid(1.702 h))`` with ``h = c_fc(x)`` equals
    ``c_proj'(silu(c_fc'(x)))`` with ``c_fc'`` scaled by 1.702 and ``c_proj``'s
    weight by 1 / 1.702 (``silu(z) = z sigmoid(z)``): the scales go into the
    weights (a matrix the size of the weights, not of the activations), and
    the activation takes one in-place SiLU instead of QuickGELU's three
    passes (the same values to float rounding). Other MLPs, float32-less
    weights (cast once to bf16 / fp16; the cast folds the scales into the
    weights first, :func:`~.low_precision.fold_quick_gelu`) and modules
    with forward hooks run as they are.
    """
    if not foldable_quick_gelu_mlp(mlp):
        return mlp(x)
    fc, proj = mlp.c_fc, mlp.c_proj
    if fc.weight.dtype != torch.float32 or _has_hooks(mlp, fc, mlp.gelu, proj):
        # weights cast once to bf16 / fp16 (a scaled copy would round again), or
        # hooks that expect the modules to be called
        return mlp(x)
    s = QUICK_GELU_SCALE
    h = F.linear(x, fc.weight * s, None if fc.bias is None else fc.bias * s)
    return F.linear(F.silu(h, inplace=not h.requires_grad), proj.weight / s, proj.bias)
