"""CAT-Seg's cost aggregation: spatial (per class) and class (per position).

Cho et al., "CAT-Seg: Cost Aggregation for Open-Vocabulary Semantic
Segmentation", CVPR 2024, Sec. 3.3. The cost embedding ``F`` has shape
(B, C, N, H, W) for N classes (names).

* Spatial aggregation (Eq. 3): for each class ``n`` separately, two Swin
  blocks (window, then shifted window) over ``F(:, n)``, whose queries and
  keys also see the projected CLIP image embeddings ``E_v`` (appearance
  guidance)::

      F'(:, n) = T_sa([F(:, n); P_v(E_v)])

* Class aggregation (Eq. 4): for each position ``i``, a transformer layer
  over the N class tokens ``F'(i, :)`` with no positional encoding, so it is
  permutation-equivariant over classes and works for any N; its queries and
  keys also see the projected text embeddings ``E_t`` (text guidance)::

      F''(i, :) = T_ca([F'(i, :); P_t(E_t)])

Every operation except the attention across classes acts on one class at a
time, so both modules take ``class_chunk``: classes processed at once. The
class attention computes keys and values of all classes first and then its
queries chunk by chunk, so chunking never changes the result (beyond float
rounding).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from mmseg.models.backbones.swin import ShiftWindowMSA

__all__ = ['GuidedWindowMSA', 'GuidedSwinBlock', 'CATSegSpatialAggregation',
           'CATSegClassAggregation', 'class_chunks']


def class_chunks(num: int, chunk: Optional[int]):
    """``(start, end)`` pairs covering ``range(num)`` in steps of ``chunk``."""
    if chunk is None or chunk >= num:
        return [(0, num)]
    if chunk < 1:
        raise ValueError(f'class_chunk_size must be >= 1 or None, got {chunk}.')
    return [(s, min(s + chunk, num)) for s in range(0, num, chunk)]


class GuidedWindowMSA(BaseModule):
    """Window attention whose queries and keys see a guidance vector.

    Plugged into mmseg's :class:`ShiftWindowMSA` as its ``w_msa`` (which
    does the padding, cyclic shift, masking and window partition). Input
    windows carry ``[x; g]`` (C + G channels); the output carries the
    attended ``x`` and, unchanged, ``g`` (so the window merge of
    ``ShiftWindowMSA`` sees the channel count it was given)::

        q = W_q [x; g],  k = W_k [x; g],  v = W_v x
        x' = W_o softmax(q k^T / sqrt(d) + mask) v

    As in CAT-Seg there is no relative position bias.

    Args:
        embed_dims (int): C.
        guidance_dims (int): G (0: no guidance).
        num_heads (int): Attention heads.
    """

    def __init__(self, embed_dims: int, guidance_dims: int, num_heads: int,
                 init_cfg=None):
        super().__init__(init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'GuidedWindowMSA: embed_dims={embed_dims} is '
                             f'not divisible by num_heads={num_heads}.')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.q = nn.Linear(embed_dims + guidance_dims, embed_dims)
        self.k = nn.Linear(embed_dims + guidance_dims, embed_dims)
        self.v = nn.Linear(embed_dims, embed_dims)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x: (nW*B, N, C + G); mask: (nW, N, N) of 0 / -100 or None."""
        feats = x[..., :self.embed_dims]
        q, k, v = (self._heads(self.q(x)), self._heads(self.k(x)),
                   self._heads(self.v(feats)))
        attn_mask = None
        if mask is not None:
            num_windows = mask.shape[0]
            attn_mask = mask.to(q.dtype).repeat(x.shape[0] // num_windows, 1,
                                                1)[:, None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(feats.shape)
        return torch.cat([self.proj(out), x[..., self.embed_dims:]], dim=-1)


class GuidedSwinBlock(BaseModule):
    """A Swin block (Liu et al., ICCV 2021) with guided window attention.

    ``x' = x + SW-MSA([LN(x); g])``, ``x'' = x' + FFN(LN(x'))``.

    Args:
        embed_dims (int): C.
        guidance_dims (int): G.
        num_heads (int): Attention heads.
        window_size (int): Window side.
        shift (bool): Shifted windows (shift ``window_size // 2``).
    """

    def __init__(self, embed_dims: int, guidance_dims: int, num_heads: int,
                 window_size: int, shift: bool, init_cfg=None):
        super().__init__(init_cfg)
        self.embed_dims = embed_dims
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = ShiftWindowMSA(
            embed_dims, num_heads, window_size,
            shift_size=window_size // 2 if shift else 0)
        self.attn.w_msa = GuidedWindowMSA(embed_dims, guidance_dims, num_heads)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, 4 * embed_dims, num_fcs=2,
                       act_cfg=dict(type='GELU'), add_identity=True)

    def forward(self, x: Tensor, hw_shape: Tuple[int, int],
                guidance: Optional[Tensor]) -> Tensor:
        """x: (B', H*W, C); guidance: (B', H*W, G) or None."""
        identity = x
        x = self.norm1(x)
        if guidance is not None:
            x = torch.cat([x, guidance], dim=-1)
        x = self.attn(x, hw_shape)[..., :self.embed_dims] + identity
        return self.ffn(self.norm2(x), identity=x)


class CATSegSpatialAggregation(BaseModule):
    """Spatial aggregation (CAT-Seg Eq. 3): two guided Swin blocks per class.

    Args:
        embed_dims (int): Cost-embedding channels C.
        guidance_dims (int): Projected appearance-guidance channels (0: none).
        num_heads (int): Attention heads.
        window_size (int): Window side (12 on CAT-Seg's 24x24 grid).
    """

    def __init__(self, embed_dims: int, guidance_dims: int, num_heads: int,
                 window_size: int, init_cfg=None):
        super().__init__(init_cfg)
        self.blocks = nn.ModuleList([
            GuidedSwinBlock(embed_dims, guidance_dims, num_heads, window_size,
                            shift=shift) for shift in (False, True)
        ])
        self.guidance_norm = nn.LayerNorm(guidance_dims) \
            if guidance_dims > 0 else None

    def forward(self, x: Tensor, guidance: Optional[Tensor],
                class_chunk: Optional[int] = None) -> Tensor:
        """x: (B, C, N, H, W); guidance: (B, G, H, W) or None."""
        b, c, n, h, w = x.shape
        if guidance is not None:
            guidance = self.guidance_norm(guidance.flatten(2).transpose(1, 2))
        outs = []
        for start, end in class_chunks(n, class_chunk):
            m = end - start
            part = x[:, :, start:end].permute(0, 2, 3, 4, 1).reshape(
                b * m, h * w, c)
            g = guidance.repeat_interleave(m, dim=0) \
                if guidance is not None else None
            for block in self.blocks:
                part = block(part, (h, w), g)
            outs.append(part.view(b, m, h, w, c).permute(0, 4, 1, 2, 3))
        return torch.cat(outs, dim=2)


def elu_feature_map(x: Tensor) -> Tensor:
    """``phi(x) = elu(x) + 1`` of linear attention (Katharopoulos et al.,
    ICML 2020, Eq. 7)."""
    return F.elu(x) + 1


class CATSegClassAggregation(BaseModule):
    """Class aggregation (CAT-Seg Eq. 4): attention across class tokens.

    At every (optionally average-pooled) position the N class tokens attend
    to each other, their queries and keys guided by the text embeddings;
    the result is upsampled back and added to the input, as in CAT-Seg::

        t = P(x)                              (avg-pool, per class)
        t' = t + A(LN(t), g),  t'' = t' + MLP(LN(t'))
        x' = x + U(t'')                        (bilinear, align_corners)

    ``A`` is linear attention (``phi(q) sum_s phi(k_s) v_s^T /
    phi(q) sum_s phi(k_s)``) or softmax attention. With ``pad_len > 0`` the
    keys/values are padded with ``pad_len - N`` copies of one learnable
    token (CAT-Seg's fixed-length class sequence); padded copies are
    identical, so equivariance over the real classes is kept.

    Args:
        embed_dims (int): C.
        guidance_dims (int): Projected text-guidance channels (0: none).
        num_heads (int): Attention heads.
        attention (str): ``'linear'`` or ``'softmax'``.
        pad_len (int): Length the class sequence is padded to (0: none).
    """

    def __init__(self, embed_dims: int, guidance_dims: int, num_heads: int,
                 attention: str = 'linear', pad_len: int = 0, init_cfg=None):
        super().__init__(init_cfg)
        if attention not in ('linear', 'softmax'):
            raise ValueError(f"CATSegClassAggregation: attention={attention!r}"
                             f"; use 'linear' or 'softmax'.")
        if embed_dims % num_heads:
            raise ValueError(f'CATSegClassAggregation: embed_dims={embed_dims}'
                             f' is not divisible by num_heads={num_heads}.')
        self.attention = attention
        self.num_heads = num_heads
        self.pad_len = pad_len
        self.norm1 = nn.LayerNorm(embed_dims)
        self.q = nn.Linear(embed_dims + guidance_dims, embed_dims)
        self.k = nn.Linear(embed_dims + guidance_dims, embed_dims)
        self.v = nn.Linear(embed_dims, embed_dims)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dims, 4 * embed_dims), nn.ReLU(),
            nn.Linear(4 * embed_dims, embed_dims))
        self.padding_token = nn.Parameter(torch.zeros(embed_dims)) \
            if pad_len > 0 else None
        self.padding_guidance = nn.Parameter(torch.zeros(guidance_dims)) \
            if pad_len > 0 and guidance_dims > 0 else None

    def _heads(self, t: Tensor) -> Tensor:
        return t.view(t.shape[0], t.shape[1], self.num_heads, -1)

    def _num_padding(self, num: int) -> int:
        """Padding tokens added to ``num`` class tokens."""
        if self.padding_token is None or num >= self.pad_len:
            return 0
        return self.pad_len - num

    def _padding_keys_values(self, guided: bool) -> Tuple[Tensor, Tensor]:
        """Key and value (heads, d) of the padding token (as rows of :meth:`_keys_values`)."""
        y = self.norm1(self.padding_token)
        yg = torch.cat([y, self.padding_guidance]) if guided else y
        return (self.k(yg).view(self.num_heads, -1),
                self.v(y).view(self.num_heads, -1))

    def _keys_values(self, tokens: Tensor, guidance: Optional[Tensor], pad: bool = True
                     ) -> Tuple[Tensor, Tensor]:
        """Keys and values (P, S, heads, d) of all tokens, incl. padding if ``pad``."""
        num = tokens.shape[1]
        if pad and self._num_padding(num):
            extra = self._num_padding(num)
            pad_tokens = self.padding_token.expand(tokens.shape[0], extra, -1)
            tokens = torch.cat([tokens, pad_tokens], dim=1)
            if guidance is not None:
                gpad = self.padding_guidance.expand(guidance.shape[0], extra,
                                                    -1)
                guidance = torch.cat([guidance, gpad], dim=1)
        y = self.norm1(tokens)
        yg = torch.cat([y, guidance], dim=-1) if guidance is not None else y
        return self._heads(self.k(yg)), self._heads(self.v(y))

    def forward(self, x: Tensor, guidance: Optional[Tensor],
                pooling_size: Sequence[int] = (1, 1),
                class_chunk: Optional[int] = None) -> Tensor:
        """x: (B, C, N, H, W); guidance: (B, N, G) or None."""
        b, c, n, h, w = x.shape
        pooling_size = tuple(pooling_size)
        pooled = x
        if pooling_size != (1, 1):
            pooled = F.avg_pool2d(x.transpose(1, 2).reshape(b * n, c, h, w),
                                  pooling_size)
            pooled = pooled.view(b, n, c, *pooled.shape[2:]).transpose(1, 2)
        ph, pw = pooled.shape[3:]
        tokens = pooled.permute(0, 3, 4, 2, 1).reshape(b * ph * pw, n, c)
        if guidance is not None:
            guidance = guidance.repeat_interleave(ph * pw, dim=0)
        if self.attention == 'linear':
            # the padded keys/values are pad_len - N copies of one token, the same at every
            # position: their sums are that token's term times the count (computing them as
            # rows cost 256 tokens per position for any vocabulary below 256 names)
            k, v = self._keys_values(tokens, guidance, pad=False)
            k = elu_feature_map(k)
            kv = torch.einsum('pshd,pshe->phde', k, v)
            k_sum = k.sum(dim=1)
            extra = self._num_padding(n)
            if extra:
                k_pad, v_pad = self._padding_keys_values(guidance is not None)
                k_pad = elu_feature_map(k_pad)
                kv = kv + extra * torch.einsum('hd,he->hde', k_pad, v_pad)
                k_sum = k_sum + extra * k_pad
        else:
            k, v = self._keys_values(tokens, guidance)
        outs = []
        for start, end in class_chunks(n, class_chunk):
            t = tokens[:, start:end]
            y = self.norm1(t)
            if guidance is not None:
                y = torch.cat([y, guidance[:, start:end]], dim=-1)
            q = self._heads(self.q(y))
            if self.attention == 'linear':
                q = elu_feature_map(q)
                num = torch.einsum('plhd,phde->plhe', q, kv)
                den = torch.einsum('plhd,phd->plh', q, k_sum) + 1e-6
                att = num / den[..., None]
            else:
                att = F.scaled_dot_product_attention(
                    q.transpose(1, 2), k.transpose(1, 2),
                    v.transpose(1, 2)).transpose(1, 2)
            t = t + att.flatten(2)
            t = t + self.mlp(self.norm2(t))
            m = end - start
            t = t.view(b, ph, pw, m, c).permute(0, 3, 4, 1, 2)
            if (ph, pw) != (h, w):
                t = F.interpolate(t.reshape(b * m, c, ph, pw), size=(h, w),
                                  mode='bilinear', align_corners=True)
            outs.append(t.reshape(b, m, c, h, w).transpose(1, 2))
        return x + torch.cat(outs, dim=2)
