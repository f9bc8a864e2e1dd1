"""Mask2Former's pixel decoder: a deformable-attention encoder + FPN.

The three coarsest backbone maps (strides 8, 16, 32) are projected to
``channels`` (1x1 conv + GroupNorm), flattened with sine position and level
embeddings and refined by ``num_layers`` multi-scale deformable
self-attention layers (Mask2Former, Cheng et al., CVPR 2022, Sec. 4.1;
Deformable DETR encoder, Zhu et al., ICLR 2021). The finest map (stride 4)
is merged FPN-style into the finest refined map, and a 1x1 conv gives the
per-pixel mask features. The attention is pure PyTorch
(:mod:`.ms_deform_attn`), with mmcv's CUDA kernel used when available.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.position_embedding import sine_position_embedding
from .ms_deform_attn import MSDeformAttn

__all__ = ['MSDeformAttnPixelDecoder']


class MSDeformEncoderLayer(nn.Module):
    """Post-norm deformable self-attention + FFN layer."""

    def __init__(self, channels: int, num_heads: int, num_levels: int,
                 num_points: int, ffn_channels: int):
        super().__init__()
        self.attn = MSDeformAttn(channels, num_heads, num_levels, num_points)
        self.norm1 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn_channels),
                                 nn.ReLU(inplace=True),
                                 nn.Linear(ffn_channels, channels))
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x, pos, reference_points, shapes, starts):
        x = self.norm1(x + self.attn(x + pos, reference_points, x, shapes,
                                     starts))
        return self.norm2(x + self.ffn(x))


def conv_gn(in_channels: int, out_channels: int, kernel_size: int,
            relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size,
                        padding=kernel_size // 2, bias=False),
              nn.GroupNorm(32, out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@MODELS.register_module()
class MSDeformAttnPixelDecoder(nn.Module):
    """Multi-scale deformable-attention pixel decoder.

    Args:
        in_channels (Sequence[int]): Channels of the four backbone maps,
            finest first (strides 4, 8, 16, 32).
        channels (int): Decoder width (256).
        mask_channels (int): Channels of the mask features (256).
        num_layers (int): Deformable encoder layers (6).
        num_heads (int): Attention heads (8).
        num_points (int): Sampling points per head and level (4).
        ffn_channels (int): FFN width (1024).

    Returns (forward):
        tuple: mask features (B, mask_channels, H/4, W/4) and the three
        refined maps, coarsest first (strides 32, 16, 8).
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 256,
                 mask_channels: int = 256, num_layers: int = 6,
                 num_heads: int = 8, num_points: int = 4,
                 ffn_channels: int = 1024):
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f'MSDeformAttnPixelDecoder takes four maps '
                             f'(strides 4-32), got in_channels={in_channels}.')
        self.channels = channels
        self.num_levels = 3
        # coarsest first
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, channels, 1), nn.GroupNorm(32,
                                                                  channels))
            for c in reversed(list(in_channels)[1:]))
        self.level_embed = nn.Parameter(torch.zeros(self.num_levels,
                                                    channels))
        self.layers = nn.ModuleList(
            MSDeformEncoderLayer(channels, num_heads, self.num_levels,
                                 num_points, ffn_channels)
            for _ in range(num_layers))
        self.lateral = conv_gn(in_channels[0], channels, 1, relu=False)
        self.output = conv_gn(channels, channels, 3, relu=True)
        self.mask_proj = nn.Conv2d(channels, mask_channels, 1)
        nn.init.normal_(self.level_embed)
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.constant_(proj[0].bias, 0)

    def out_widths(self, in_widths: Optional[Sequence[int]] = None) -> Tuple[int, int]:
        """Channels of the forward's outputs, whatever the widths it is fed
        (``in_widths``, those of the four backbone maps): the mask features
        (``mask_channels``), then those of every map of the list of the
        three refined maps (``channels``)
        (:func:`~mmovss.models.utils.width_check.neck_output_widths`)."""
        return self.mask_proj.out_channels, self.channels

    @staticmethod
    def reference_points(shapes: List[Tuple[int, int]], device) -> Tensor:
        """Pixel centres of every level, normalised: (1, S, L, 2)."""
        refs = []
        for h, w in shapes:
            ys, xs = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, device=device) / h,
                torch.linspace(0.5, w - 0.5, w, device=device) / w,
                indexing='ij')
            refs.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], -1))
        refs = torch.cat(refs, 0)
        return refs[None, :, None].expand(-1, -1, len(shapes), -1)

    def forward(self, feats: Sequence[Tensor]
                ) -> Tuple[Tensor, List[Tensor]]:
        if len(feats) != 4:
            raise ValueError(f'MSDeformAttnPixelDecoder expects 4 maps, got '
                             f'{len(feats)}.')
        levels = list(reversed(list(feats)[1:]))  # strides 32, 16, 8
        srcs, poss, shapes = [], [], []
        for i, (x, proj) in enumerate(zip(levels, self.input_proj)):
            x = proj(x)
            shapes.append(tuple(x.shape[-2:]))
            pos = sine_position_embedding(x, self.channels // 2)
            srcs.append(x.flatten(2).transpose(1, 2))
            poss.append(pos.flatten(2).transpose(1, 2) +
                        self.level_embed[i].view(1, 1, -1))
        src, pos = torch.cat(srcs, 1), torch.cat(poss, 1)
        spatial = torch.as_tensor(shapes, dtype=torch.long,
                                  device=src.device)
        starts = torch.cat([spatial.new_zeros(1),
                            spatial.prod(1).cumsum(0)[:-1]])
        # float32 even in a low-precision stream (the sampling locations)
        refs = self.reference_points(shapes, src.device)
        refs = refs.expand(src.shape[0], -1, -1, -1)
        for layer in self.layers:
            src = layer(src, pos, refs, spatial, starts)
        outs = []
        for part, (h, w) in zip(src.split([h * w for h, w in shapes], 1),
                                shapes):
            outs.append(part.transpose(1, 2).reshape(src.shape[0], -1, h, w))
        fine = self.lateral(feats[0]) + F.interpolate(
            outs[-1], size=feats[0].shape[-2:], mode='bilinear',
            align_corners=False)
        return self.mask_proj(self.output(fine)), outs
