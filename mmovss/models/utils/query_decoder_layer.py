"""The transformer decoder layer of the mask-classification decoders.

One post-norm layer (Vaswani et al., NeurIPS 2017, Sec. 3.1; DETR, Carion
et al., ECCV 2020) in the two orders that the methods use:

* self-attention first (DETR, MaskFormer - ZegFormer, OVSeg, OpenSeg's
  :class:`~mmovss.models.utils.maskformer_decoder.QueryDecoder`), with
  dropout after every sub-layer and inside the FFN;
* cross-attention first (Mask2Former, Cheng et al., CVPR 2022, Sec. 3.2.1,
  "masked attention" - FC-CLIP's
  :class:`~mmovss.models.decode_heads.fcclip_head.MaskedAttentionDecoder`),
  without dropout, the cross-attention restricted by ``attn_mask``.

Every sub-layer is ``x = norm(x + drop(sublayer(x)))``; queries and keys
carry their position embeddings, values do not. The parameter names
(``self_attn``, ``cross``, ``ffn.*``, ``norms.{0,1,2}``, ``norms[i]`` after
the i-th sub-layer) are those of the checkpoints of both orders.
"""
from typing import Optional

import torch.nn as nn
from torch import Tensor

__all__ = ['QueryDecoderLayer']


class QueryDecoderLayer(nn.Module):
    """Self-attention, cross-attention (in either order) and FFN, post-norm.

    Args:
        channels (int): Width.
        num_heads (int): Attention heads.
        ffn_channels (int): FFN hidden width.
        dropout (float, optional): DETR's dropout after each sub-layer and
            after the FFN's activation (then the FFN's layers are ``ffn.0``
            and ``ffn.3``). None: no dropout modules (Mask2Former; ``ffn.0``
            and ``ffn.2``).
        cross_first (bool): Cross-attention before self-attention
            (Mask2Former) instead of after it (DETR).
    """

    def __init__(self, channels: int, num_heads: int, ffn_channels: int,
                 dropout: Optional[float] = None, cross_first: bool = False):
        super().__init__()
        rate = 0.0 if dropout is None else dropout

        def attention():
            return nn.MultiheadAttention(channels, num_heads, dropout=rate,
                                         batch_first=True)

        # created in the order of the sub-layers (the checkpoints' key order)
        if cross_first:
            self.cross = attention()
            self.self_attn = attention()
        else:
            self.self_attn = attention()
            self.cross = attention()
        ffn = [nn.Linear(channels, ffn_channels), nn.ReLU(inplace=True)]
        if dropout is not None:
            ffn.append(nn.Dropout(dropout))
        self.ffn = nn.Sequential(*ffn, nn.Linear(ffn_channels, channels))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(3))
        self.drop = nn.Identity() if dropout is None else nn.Dropout(dropout)
        self.cross_first = cross_first

    def self_attention(self, q: Tensor, q_pos: Tensor) -> Tensor:
        k = q + q_pos
        # need_weights=False: PyTorch computes the attention with SDPA
        return self.self_attn(k, k, q, need_weights=False)[0]

    def cross_attention(self, q: Tensor, q_pos: Tensor, memory: Tensor,
                        mem_pos: Tensor,
                        attn_mask: Optional[Tensor]) -> Tensor:
        return self.cross(q + q_pos, memory + mem_pos, memory,
                          attn_mask=attn_mask, need_weights=False)[0]

    def forward(self, q: Tensor, q_pos: Tensor, memory: Tensor,
                mem_pos: Tensor, attn_mask: Optional[Tensor] = None
                ) -> Tensor:
        """Updated queries.

        Args:
            q (Tensor): (B, Q, C) queries.
            q_pos (Tensor): (B, Q, C) query position embeddings.
            memory (Tensor): (B, L, C) attended features.
            mem_pos (Tensor): (B, L, C) their position embeddings.
            attn_mask (Tensor, optional): (B * heads, Q, L) or (Q, L) bool mask of the
                cross-attention, True where a query may not attend.
        """
        if self.cross_first:
            q = self.norms[0](q + self.drop(self.cross_attention(
                q, q_pos, memory, mem_pos, attn_mask)))
            q = self.norms[1](q + self.drop(self.self_attention(q, q_pos)))
        else:
            q = self.norms[0](q + self.drop(self.self_attention(q, q_pos)))
            q = self.norms[1](q + self.drop(self.cross_attention(
                q, q_pos, memory, mem_pos, attn_mask)))
        return self.norms[2](q + self.drop(self.ffn(q)))
