"""OpenSeg's class-agnostic mask loss (Ghiasi et al., ECCV 2022, Eq. 1).

Every ground-truth segment should be covered well by at least one proposal,
with no matching and no classes::

    L_S = (1 / M) sum_j (1 - max_i Dice(s_i, s^l_j))
    Dice(s, g) = 2 sum_p s(p) g(p) / (sum_p s(p) + sum_p g(p))

over the ``M`` ground-truth masks ``s^l_j`` of the batch, with the proposals
``s_i = sigmoid(mask logits)`` of the same image. Ignored pixels are left
out of the sums.
"""
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

__all__ = ['pairwise_dice', 'ClassAgnosticDiceLoss']


def pairwise_dice(probs: Tensor, targets: Tensor,
                  valid: Optional[Tensor] = None,
                  eps: float = 1e-6) -> Tensor:
    """Soft Dice of every proposal with every target.

    Args:
        probs (Tensor): (N, H, W) proposal probabilities.
        targets (Tensor): (M, H, W) binary targets.
        valid (Tensor, optional): (H, W) bool, pixels that count.
        eps (float): Added to numerator and denominator.

    Returns:
        Tensor: (N, M) ``Dice(s_i, g_j)``.
    """
    probs = probs.flatten(1)
    targets = targets.flatten(1).to(probs)
    if valid is not None:
        keep = valid.flatten().to(probs)
        probs = probs * keep
        targets = targets * keep
    inter = probs @ targets.t()
    total = probs.sum(1)[:, None] + targets.sum(1)[None]
    return (2 * inter + eps) / (total + eps)


@MODELS.register_module()
class ClassAgnosticDiceLoss(nn.Module):
    """``loss_weight * L_S`` (OpenSeg's ``alpha * L_S``).

    Args:
        loss_weight (float): ``alpha``.
        eps (float): Dice smoothing.
        loss_name (str): Key of the loss.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6,
                 loss_name: str = 'loss_mask'):
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps
        self.loss_name = loss_name

    def forward(self, mask_logits: List[Tensor], gt_masks: List[Tensor],
                valid: Optional[List[Tensor]] = None) -> Tensor:
        """Loss over images.

        Args:
            mask_logits (list[Tensor]): Per image, (N, h, w) proposal logits
                (resized bilinearly to the ground-truth size).
            gt_masks (list[Tensor]): Per image, (M_b, H, W) binary masks.
            valid (list[Tensor], optional): Per image, (H, W) bool.
        """
        if len(mask_logits) != len(gt_masks):
            raise ValueError('ClassAgnosticDiceLoss: one set of proposals per '
                             'set of ground-truth masks is needed.')
        terms = []
        for i, (logits, gts) in enumerate(zip(mask_logits, gt_masks)):
            if gts.shape[0] == 0:
                continue
            if logits.shape[-2:] != gts.shape[-2:]:
                logits = F.interpolate(logits[None], size=gts.shape[-2:],
                                       mode='bilinear',
                                       align_corners=False)[0]
            dice = pairwise_dice(logits.sigmoid(), gts,
                                 None if valid is None else valid[i],
                                 self.eps)
            terms.append(1 - dice.max(dim=0).values)
        if not terms:
            zero = sum(m.sum() for m in mask_logits) * 0.0
            return zero
        return self.loss_weight * torch.cat(terms).mean()
