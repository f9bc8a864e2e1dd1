"""DETR's sine position embedding of a feature map.

Used by the Mask2Former pixel decoder (:mod:`~mmovss.models.necks`), the
MaskFormer query decoder (:mod:`.maskformer_decoder`: ZegFormer, OVSeg,
OpenSeg), FC-CLIP's masked-attention decoder and OpenSeg's proposal masks.
"""
import torch
from torch import Tensor

__all__ = ['sine_position_embedding']


def sine_position_embedding(x: Tensor, num_feats: int,
                            temperature: float = 10000.0) -> Tensor:
    """DETR's normalised sine position embedding (B, 2*num_feats, h, w).

    ``PE(p, 2i) = sin(p / T^(2i / d))``, ``PE(p, 2i + 1) = cos(p / T^(2i /
    d))`` of the row (first half) and column (second half) positions
    normalised to ``(0, 2 pi]`` (Carion et al., ECCV 2020, following
    Vaswani et al., NeurIPS 2017, Sec. 3.5).

    Args:
        x (Tensor): (B, C, h, w) map (only its shape, dtype, device count).
        num_feats (int): Channels per axis ``d``.
        temperature (float): ``T``.
    """
    b, _, h, w = x.shape
    y_embed = torch.arange(1, h + 1, dtype=x.dtype, device=x.device)
    x_embed = torch.arange(1, w + 1, dtype=x.dtype, device=x.device)
    eps, scale = 1e-6, 2 * torch.pi
    y_embed = (y_embed / (h + eps) * scale)[:, None].expand(h, w)
    x_embed = (x_embed / (w + eps) * scale)[None, :].expand(h, w)
    dim_t = torch.arange(num_feats, dtype=x.dtype, device=x.device)
    dim_t = temperature**(2 * torch.div(dim_t, 2, rounding_mode='floor') /
                          num_feats)
    pos_x = x_embed[..., None] / dim_t
    pos_y = y_embed[..., None] / dim_t
    pos_x = torch.stack([pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()],
                        -1).flatten(2)
    pos_y = torch.stack([pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()],
                        -1).flatten(2)
    pos = torch.cat([pos_y, pos_x], dim=-1).permute(2, 0, 1)
    return pos[None].expand(b, -1, -1, -1)
