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

Fused inference paths (``fused=True``, the default, taken when autograd is
off; ``fused=False`` or training runs the reference path, the layer-by-layer
computation above; both are equal within float rounding,
``tests/test_catseg_fused.py``). They keep the cost
embedding in a channels-last memory layout, (B, N, H, W, C) in memory, and
return (B, C, N, H, W) *views* of it, so no layer transposes the whole cost
embedding, and they use the linearity of the guided projections:

* ``W [x; g] + b = W_x x + (W_g g + b)``: the guidance term of the queries
  and keys is computed once per view (spatial: per position; class: per
  class) instead of once per class and position, and the concatenation of
  the guidance to every token is never materialised;
* the spatial blocks gather the tokens of each class into window order once
  (padding, cyclic shift and window partition as one index), run the
  attention of all windows and the FFN in that order and scatter back once;
  queries, keys and values come from one fused product.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule
from mmseg.models.backbones.swin import ShiftWindowMSA

__all__ = ['GuidedWindowMSA', 'GuidedSwinBlock', 'CATSegSpatialAggregation',
           'CATSegClassAggregation', 'WindowLayout', 'class_chunks', 'elu_feature_map',
           'elu_feature_map_', 'use_fused']


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

    def guidance_terms(self, guidance: Optional[Tensor], layout: 'WindowLayout'
                       ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
        """``W_g g`` of the queries and keys, (B, Lp, C) in window order.

        Padding slots get 0 (the reference pads ``[LN(x); g]`` with zeros,
        so a padded token's query is the bias alone).
        """
        if guidance is None:
            return None, None
        c, msa = self.embed_dims, self.attn.w_msa
        g = layout.gather(guidance[:, None])[:, 0]
        return F.linear(g, msa.q.weight[:, c:]), F.linear(g, msa.k.weight[:, c:])

    def forward_windows(self, x: Tensor, layout: 'WindowLayout',
                        guidance_q: Optional[Tensor] = None,
                        guidance_k: Optional[Tensor] = None) -> Tensor:
        """Fused equivalent of :meth:`forward` for B views x m classes.

        Args:
            x (Tensor): (B, m, H*W, C) tokens in grid order.
            layout (WindowLayout): Windows of this block for (H, W).
            guidance_q, guidance_k (Tensor, optional): (B, Lp, C) from
                :meth:`guidance_terms`, shared by the m classes.

        Returns:
            Tensor: (B, m, H*W, C), equal to :meth:`forward` on the
            (B*m, H*W, C) tokens within float rounding.
        """
        b, m, _, c = x.shape
        msa = self.attn.w_msa
        heads, d = msa.num_heads, c // msa.num_heads
        xw = layout.gather(x)  # (B, m, Lp, C)
        y = self.norm1(xw)
        if layout.pad_slots is not None:
            y.index_fill_(2, layout.pad_slots, 0.0)
        weight = torch.cat([msa.q.weight[:, :c], msa.k.weight[:, :c], msa.v.weight])
        bias = torch.cat([msa.q.bias, msa.k.bias, msa.v.bias])
        q, k, v = F.linear(y, weight, bias).split(c, dim=-1)  # views of one product
        del y
        if guidance_q is not None:
            q += guidance_q[:, None]
            k += guidance_k[:, None]
        nw, lw = layout.num_windows, layout.window_len

        def windows(t):  # (B, m, Lp, C) -> (B*m*nW, heads, Lw, d), a view
            return t.reshape(b * m * nw, lw, heads, d).transpose(1, 2)

        q, k, v = windows(q), windows(k), windows(v)
        if layout.mask is None:
            att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
        else:  # one call per window position, each with its (Lw, Lw) mask
            att = q.new_empty(b * m * nw, lw, heads, d)
            for i in range(nw):
                att[i::nw] = F.scaled_dot_product_attention(
                    q[i::nw], k[i::nw], v[i::nw],
                    attn_mask=layout.mask[i].to(q.dtype)).transpose(1, 2)
        del q, k, v
        xw = msa.proj(att.reshape(b, m, nw * lw, c)).add_(xw)
        del att
        xw = self.ffn(self.norm2(xw), identity=xw)
        return layout.scatter(xw)


class WindowLayout:
    """Window order of a (H, W) grid for one Swin block, as an index.

    Reproduces the token order of mmseg's :class:`ShiftWindowMSA`: zero
    padding of the grid to multiples of the window, cyclic shift by
    ``-shift`` and window partition, as one gather (:meth:`gather`), and
    its inverse (:meth:`scatter`); the shifted-window mask of 0 / -100 as
    ``ShiftWindowMSA`` builds it.

    Attributes:
        index (Tensor): (Lp,) source token of each window slot; ``H*W``
            (a zero row) for padding slots.
        inverse (Tensor): (H*W,) window slot of each grid token.
        pad_slots (Tensor | None): Window slots that are padding.
        mask (Tensor | None): (nW, Lw, Lw) attention mask (shifted blocks).
    """

    def __init__(self, hw: Tuple[int, int], window: int, shift: int, device=None):
        h, w = hw
        hp, wp = -(-h // window) * window, -(-w // window) * window
        self.num_windows = (hp // window) * (wp // window)
        self.window_len = window * window
        rows = torch.arange(hp).view(hp // window, 1, window, 1)
        cols = torch.arange(wp).view(1, wp // window, 1, window)
        # padded position of each slot (windows row-major, then within)
        r = ((rows + shift) % hp).expand(hp // window, wp // window, window, window)
        c = ((cols + shift) % wp).expand_as(r)
        r, c = r.reshape(-1), c.reshape(-1)
        real = (r < h) & (c < w)
        self.index = torch.where(real, r * w + c, h * w).to(device)
        slots = torch.arange(r.numel())
        inverse = torch.empty(h * w, dtype=torch.long)
        inverse[(r * w + c)[real]] = slots[real]
        self.inverse = inverse.to(device)
        self.padded = not bool(real.all())
        self.pad_slots = slots[~real].to(device) if self.padded else None
        self.mask = None
        if shift > 0:
            region = torch.zeros(hp, wp)
            cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            count = 0
            for hs in cuts:
                for ws in cuts:
                    region[hs, ws] = count
                    count += 1
            ids = region.view(hp // window, window, wp // window, window).permute(
                0, 2, 1, 3).reshape(self.num_windows, self.window_len)
            mask = ids[:, None, :] - ids[:, :, None]
            self.mask = mask.masked_fill(mask != 0, -100.0).to(device)

    def gather(self, x: Tensor) -> Tensor:
        """(B, m, H*W, C) grid order -> (B, m, Lp, C) window order."""
        if self.padded:
            x = torch.cat([x, x.new_zeros(*x.shape[:2], 1, x.shape[-1])], dim=2)
        return x.index_select(2, self.index)

    def scatter(self, x: Tensor) -> Tensor:
        """(B, m, Lp, C) window order -> (B, m, H*W, C) grid order."""
        return x.index_select(2, self.inverse)


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
        self.window_size = window_size
        #: the fused path (see the module docstring); False: reference path
        self.fused = True
        self._layouts = {}
        self.blocks = nn.ModuleList([
            GuidedSwinBlock(embed_dims, guidance_dims, num_heads, window_size,
                            shift=shift) for shift in (False, True)
        ])
        self.guidance_norm = nn.LayerNorm(guidance_dims) \
            if guidance_dims > 0 else None

    def layouts(self, hw: Tuple[int, int], device) -> List[WindowLayout]:
        """The :class:`WindowLayout` of each block for a grid (cached)."""
        key = (tuple(hw), str(device))
        if key not in self._layouts:
            self._layouts[key] = [
                WindowLayout(hw, self.window_size, blk.attn.shift_size, device)
                for blk in self.blocks]
        return self._layouts[key]

    def forward(self, x: Tensor, guidance: Optional[Tensor],
                class_chunk: Optional[int] = None) -> Tensor:
        """x: (B, C, N, H, W); guidance: (B, G, H, W) or None.

        Returns (B, C, N, H, W); on the fused path a view of a
        channels-last (B, N, H, W, C) tensor.
        """
        b, c, n, h, w = x.shape
        if guidance is not None:
            guidance = self.guidance_norm(guidance.flatten(2).transpose(1, 2))
        if use_fused(self):
            return self._forward_fused(x, guidance, class_chunk)
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

    def _forward_fused(self, x: Tensor, guidance: Optional[Tensor],
                       class_chunk: Optional[int]) -> Tensor:
        b, c, n, h, w = x.shape
        layouts = self.layouts((h, w), x.device)
        terms = [blk.guidance_terms(guidance, lay) for blk, lay in zip(self.blocks, layouts)]
        tokens = x.permute(0, 2, 3, 4, 1)  # (B, N, H, W, C): a view when channels-last
        chunks = class_chunks(n, class_chunk)
        out = None if len(chunks) == 1 else x.new_empty(b, n, h, w, c)
        for start, end in chunks:
            part = tokens[:, start:end].reshape(b, end - start, h * w, c)
            for blk, lay, (gq, gk) in zip(self.blocks, layouts, terms):
                part = blk.forward_windows(part, lay, gq, gk)
            part = part.view(b, end - start, h, w, c)
            if out is None:
                out = part
            else:
                out[:, start:end] = part
        return out.permute(0, 4, 1, 2, 3)


def elu_feature_map(x: Tensor) -> Tensor:
    """``phi(x) = elu(x) + 1`` of linear attention (Katharopoulos et al.,
    ICML 2020, Eq. 7)."""
    return F.elu(x) + 1


def use_fused(module: nn.Module) -> bool:
    """Whether ``module`` takes its fused path: ``module.fused`` and no autograd.

    The fused paths work in place on their intermediates and are meant for
    inference; with gradients enabled (training) the reference path runs.
    """
    return bool(getattr(module, 'fused', False)) and not torch.is_grad_enabled()


def elu_feature_map_(x: Tensor) -> Tensor:
    """:func:`elu_feature_map` in place, as ``exp(min(x, 0)) + max(x, 0)``.

    The same function (``elu(x) + 1`` is ``x + 1`` for ``x > 0`` and
    ``exp(x)`` otherwise); one exponential instead of PyTorch's ELU kernel
    and its separate ``+ 1`` pass, and ``exp(x)`` is not rounded through
    ``expm1(x) + 1`` (differences below 1.2e-7). Overwrites ``x``.
    """
    neg = torch.clamp(x, max=0.0).exp_()
    return x.clamp_(min=0.0).add_(neg)


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
        #: the fused path (linear attention without pooling; see the module
        #: docstring); False: reference path
        self.fused = True

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
        if use_fused(self) and self.attention == 'linear' and pooling_size == (1, 1):
            return self._forward_fused(x, guidance, class_chunk)
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

    def _forward_fused(self, x: Tensor, guidance: Optional[Tensor],
                       class_chunk: Optional[int]) -> Tensor:
        """Linear class attention on channels-last (B, N, H*W, C) tokens.

        Two passes over the classes, ``class_chunk`` at a time: the sums
        ``sum_s phi(k_s) v_s^T`` and ``sum_s phi(k_s)`` of every position
        (keys and values of one chunk at a time, so memory does not grow
        with the vocabulary), then the queries, attention and MLP. The
        text guidance's share of the queries and keys, ``W_g g_n + b``, is
        computed once per class.
        """
        b, c, n, h, w = x.shape
        heads = self.num_heads
        d = c // heads
        tokens = x.permute(0, 2, 3, 4, 1).reshape(b, n, h * w, c)  # a view if channels-last
        q_w, k_w = self.q.weight, self.k.weight
        guided = guidance is not None
        if guided:
            g_q = F.linear(guidance, q_w[:, c:], self.q.bias)[:, :, None]  # (B, N, 1, C)
            g_k = F.linear(guidance, k_w[:, c:], self.k.bias)[:, :, None]
            kv_w = torch.cat([k_w[:, :c], self.v.weight])
            kv_b = torch.cat([torch.zeros_like(self.k.bias), self.v.bias])
        else:
            kv_w = torch.cat([k_w, self.v.weight])
            kv_b = torch.cat([self.k.bias, self.v.bias])
        chunks = class_chunks(n, class_chunk)
        kv = k_sum = None
        for start, end in chunks:
            k, v = F.linear(self.norm1(tokens[:, start:end]), kv_w, kv_b).split(c, dim=-1)
            k = k + g_k[:, start:end] if guided else k.contiguous()
            k = elu_feature_map_(k).view(b, end - start, h * w, heads, d)
            part_kv = torch.einsum('bnphd,bnphe->bphde', k, v.view(k.shape))
            part_sum = k.sum(dim=1)
            kv = part_kv if kv is None else kv + part_kv
            k_sum = part_sum if k_sum is None else k_sum + part_sum
            del k, v
        extra = self._num_padding(n)
        if extra:
            k_pad, v_pad = self._padding_keys_values(guided)
            k_pad = elu_feature_map(k_pad)
            kv = kv + extra * torch.einsum('hd,he->hde', k_pad, v_pad)
            k_sum = k_sum + extra * k_pad
        out = None if len(chunks) == 1 else x.new_empty(b, n, h * w, c)
        q_x = q_w if not guided else q_w[:, :c]
        q_b = self.q.bias if not guided else None
        for start, end in chunks:
            t = tokens[:, start:end]
            q = F.linear(self.norm1(t), q_x, q_b)
            if guided:
                q += g_q[:, start:end]
            q = elu_feature_map_(q).view(b, end - start, h * w, heads, d)
            num = torch.einsum('bnphd,bphde->bnphe', q, kv)
            den = torch.einsum('bnphd,bphd->bnph', q, k_sum) + 1e-6
            del q
            t2 = t + (num / den[..., None]).flatten(3)
            del num, den
            t2 = t2 + self.mlp(self.norm2(t2))
            part = t + t2  # x + t'' of the reference (two residuals, as released)
            if out is None:
                out = part
            else:
                out[:, start:end] = part
        return out.view(b, n, h, w, c).permute(0, 4, 1, 2, 3)
