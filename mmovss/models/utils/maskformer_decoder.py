"""MaskFormer's class-agnostic mask decoder (pixel decoder + queries).

Used by ZegFormer (Ding et al., CVPR 2022, Sec. 3.2, which builds on
MaskFormer, Cheng et al., NeurIPS 2021), OVSeg (which takes ZegFormer's) and
OpenSeg (Ghiasi et al., ECCV 2022, Sec. 3.1: FPN + cross-attention queries):

* :class:`FPNPixelDecoder` - MaskFormer's ``BasePixelDecoder``: a top-down
  FPN over the four backbone maps; a 3x3 conv of its finest (stride-4)
  output gives the per-pixel embeddings ``F``.
* :class:`QueryDecoder` - a DETR transformer decoder
  (:class:`~.query_decoder_layer.QueryDecoderLayer`): ``Q`` learned queries
  self-attend and cross-attend to the (projected, position-encoded) coarsest
  backbone map; after every layer the mask of query ``q`` is
  ``m_q = B_q . F`` with ``B_q = MLP(h_q)`` (MaskFormer, Eq. "mask
  prediction"; ZegFormer's ``m_q = sigmoid(B_q . F(I))``).

The decoder returns the query states of every layer; each head turns them
into class embeddings its own way.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.models.utils import MLP

from .position_embedding import sine_position_embedding
from .query_decoder_layer import QueryDecoderLayer

__all__ = ['FPNPixelDecoder', 'QueryDecoder', 'MaskFormerDecoder']


def conv_gn_relu(in_channels: int, out_channels: int, kernel_size: int,
                 relu: bool = True, groups: Optional[int] = None) -> nn.Sequential:
    # GroupNorm with 32 groups at MaskFormer's width (256); >= 8 channels
    # per group at smaller widths unless ``groups`` is given (detectron2's
    # get_norm('GN') always uses 32)
    if groups is None:
        groups = max(math.gcd(32, out_channels // 8), 1)
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size,
                        padding=kernel_size // 2, bias=False),
              nn.GroupNorm(groups, out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class FPNPixelDecoder(nn.Module):
    """Top-down FPN; returns the stride-4 per-pixel embeddings.

    Args:
        in_channels (Sequence[int]): Channels of the backbone maps, finest
            first (strides 4, 8, 16, 32).
        channels (int): FPN width (256).
        mask_channels (int): Channels of the per-pixel embeddings (256).
        norm_groups (int, optional): GroupNorm groups; None: 32 at width
            256, >= 8 channels per group at smaller widths (32 is
            MaskFormer's ``get_norm('GN')`` at any width).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256,
                 mask_channels: int = 256, norm_groups: Optional[int] = None):
        super().__init__()
        in_channels = list(in_channels)
        g = norm_groups
        self.lateral = nn.ModuleList(
            conv_gn_relu(c, channels, 1, relu=False, groups=g) for c in in_channels[:-1])
        self.top = conv_gn_relu(in_channels[-1], channels, 3, groups=g)
        self.output = nn.ModuleList(
            conv_gn_relu(channels, channels, 3, groups=g) for _ in in_channels[:-1])
        self.mask_proj = nn.Conv2d(channels, mask_channels, 3, padding=1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        y = self.top(feats[-1])
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            y = lat + F.interpolate(y, size=lat.shape[-2:], mode='nearest')
            y = self.output[i](y)
        return self.mask_proj(y)


class QueryDecoder(nn.Module):
    """Learned queries decoded against one feature map (DETR decoder).

    Args:
        in_channels (int): Channels of the attended map.
        channels (int): Width (256).
        num_queries (int): Queries (100).
        num_layers (int): Layers (6).
        num_heads (int): Heads (8).
        ffn_channels (int): FFN width (2048).
        dropout (float): Dropout (0.1).
        query_features (bool): Start each query from its own learned
            feature (Mask2Former's ``query_feat``) instead of zeros (DETR's
            and MaskFormer's ``tgt``, the default).
    """

    def __init__(self, in_channels: int, channels: int = 256,
                 num_queries: int = 100, num_layers: int = 6,
                 num_heads: int = 8, ffn_channels: int = 2048,
                 dropout: float = 0.1, query_features: bool = False):
        super().__init__()
        self.input_proj = nn.Conv2d(in_channels, channels, 1)
        self.query_pos = nn.Embedding(num_queries, channels)
        self.query_feat = nn.Embedding(num_queries, channels) \
            if query_features else None
        self.layers = nn.ModuleList(
            QueryDecoderLayer(channels, num_heads, ffn_channels, dropout)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> List[Tensor]:
        """(B, C_in, h, w) map -> normalised query states of every layer."""
        memory = self.input_proj(x)
        pos = sine_position_embedding(memory, memory.shape[1] // 2)
        memory = memory.flatten(2).transpose(1, 2)
        pos = pos.flatten(2).transpose(1, 2)
        q_pos = self.query_pos.weight[None].expand(x.shape[0], -1, -1)
        q = torch.zeros_like(q_pos) if self.query_feat is None else \
            self.query_feat.weight[None].expand(x.shape[0], -1, -1)
        states = []
        for layer in self.layers:
            q = layer(q, q_pos, memory, pos)
            states.append(self.norm(q))
        return states


class MaskFormerDecoder(nn.Module):
    """Pixel decoder + query decoder + mask embedding MLP.

    Args:
        in_channels (Sequence[int]): The four backbone map channels.
        channels (int): Width of both decoders (256).
        mask_channels (int): Per-pixel embedding channels (256).
        num_queries, num_layers, num_heads, ffn_channels, dropout: See
            :class:`QueryDecoder`.
        norm_groups (int, optional): See :class:`FPNPixelDecoder`.
        query_channels (int, optional): Width of the query decoder (and the
            mask embedding MLP's input and hidden layers) when it differs
            from the pixel decoder's (MaskFormer's ``HIDDEN_DIM`` vs
            ``CONVS_DIM``); None: ``channels``.
        query_features (bool): See :class:`QueryDecoder`.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256,
                 mask_channels: int = 256, num_queries: int = 100,
                 num_layers: int = 6, num_heads: int = 8,
                 ffn_channels: int = 2048, dropout: float = 0.1,
                 norm_groups: Optional[int] = None,
                 query_channels: Optional[int] = None,
                 query_features: bool = False):
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) != 4:
            raise ValueError(f'MaskFormerDecoder expects four backbone maps '
                             f'(strides 4-32), got in_channels={in_channels}.')
        self.pixel_decoder = FPNPixelDecoder(in_channels, channels,
                                             mask_channels, norm_groups)
        query_channels = query_channels or channels
        self.query_decoder = QueryDecoder(in_channels[-1], query_channels,
                                          num_queries, num_layers, num_heads,
                                          ffn_channels, dropout, query_features)
        self.mask_embed = MLP(query_channels, query_channels, mask_channels, 3)
        self.num_queries = num_queries

    def forward(self, feats: Sequence[Tensor]
                ) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        """Per-pixel embeddings, and masks and query states of every layer.

        Returns:
            tuple: (B, E, H/4, W/4) per-pixel embeddings ``F``, a list of
            (B, Q, H/4, W/4) mask logits ``B_q . F`` and a list of (B, Q, C)
            query states, one per decoder layer (the last is the output).
        """
        pixel = self.pixel_decoder(feats)
        states = self.query_decoder(feats[-1])
        masks = [torch.einsum('bqc,bchw->bqhw', self.mask_embed(s), pixel)
                 for s in states]
        return pixel, masks, states
