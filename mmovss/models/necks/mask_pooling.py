"""Mask pooling: one embedding per mask proposal from a dense feature map."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

__all__ = ['MaskPooling']


@MODELS.register_module()
class MaskPooling(nn.Module):
    """Averages dense features inside each binarised mask proposal.

    ``e_q = sum_p [m_q(p) > t] f(p) / (sum_p [m_q(p) > t] + eps)`` where the
    mask logits ``m_q`` are first resized bilinearly to the feature grid
    (FC-CLIP, Yu et al., NeurIPS 2023, Sec. 3.2, "mask-pooling"; ODISE,
    Xu et al., CVPR 2023). The mask is treated as a constant: gradients flow
    to the features only.

    Args:
        threshold (float): Logit threshold of the binary mask (0: p > 0.5).
        eps (float): Added to the mask area; an empty mask pools to zeros.
    """

    def __init__(self, threshold: float = 0.0, eps: float = 1e-8):
        super().__init__()
        self.threshold = threshold
        self.eps = eps

    def binary_masks(self, mask_logits: Tensor, size) -> Tensor:
        """(B, Q, h, w) float {0, 1} masks at the feature size."""
        if tuple(mask_logits.shape[-2:]) != tuple(size):
            mask_logits = F.interpolate(mask_logits, size=tuple(size),
                                        mode='bilinear', align_corners=False)
        return (mask_logits > self.threshold).to(mask_logits.dtype)

    def forward(self, features: Tensor, mask_logits: Tensor) -> Tensor:
        """Pools features in every mask.

        Args:
            features (Tensor): (B, D, h, w) dense features.
            mask_logits (Tensor): (B, Q, H, W) mask logits (any size).

        Returns:
            Tensor: (B, Q, D) pooled features.
        """
        if features.dim() != 4 or mask_logits.dim() != 4 or \
                features.shape[0] != mask_logits.shape[0]:
            raise ValueError(
                f'MaskPooling expects features (B, D, h, w) and mask logits '
                f'(B, Q, H, W) of the same batch, got '
                f'{tuple(features.shape)} and {tuple(mask_logits.shape)}.')
        with torch.no_grad():
            masks = self.binary_masks(mask_logits.detach(),
                                      features.shape[-2:]).to(features.dtype)
            masks = masks / (masks.sum(dim=(-2, -1), keepdim=True) + self.eps)
        return torch.einsum('bdhw,bqhw->bqd', features, masks)
