"""OpenSeg's region-word grounding loss (Ghiasi et al., ECCV 2022, Eq. 2-3).

The grounding score of image ``I`` (region embeddings ``z_i``) and caption
``C`` (word embeddings ``w_j``, ``j = 1..K``) is::

    G(I, C) = (1 / K) sum_j sum_i softmax_i(<z_i, w_j> / tau) <z_i, w_j>

(every word attends to the regions; ``<.,.>`` is the cosine similarity and
``tau`` the temperature of the softmax). Over a batch of ``B``
image-caption pairs the loss is the symmetric contrastive loss::

    L_G = L_{I->C} + L_{C->I}
    L_{I->C} = -(1/B) sum_b log( exp(G(I_b, C_b) / tau)
                                 / sum_b' exp(G(I_b, C_b') / tau) )

and ``L_{C->I}`` the same with the roles of images and captions swapped.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

__all__ = ['grounding_scores', 'RegionWordGroundingLoss']


def grounding_scores(regions: Tensor, words: Tensor,
                     word_mask: Optional[Tensor] = None,
                     temperature: float = 1.0) -> Tensor:
    """``G(I_a, C_b)`` for every image ``a`` and caption ``b``.

    Args:
        regions (Tensor): (A, N, D) region embeddings (any norm).
        words (Tensor): (B, K, D) word embeddings (any norm), padded.
        word_mask (Tensor, optional): (B, K) bool, real (non-padding) words;
            every caption needs at least one.
        temperature (float): ``tau`` of the softmax over regions.

    Returns:
        Tensor: (A, B) grounding scores.
    """
    if regions.dim() != 3 or words.dim() != 3 or \
            regions.shape[-1] != words.shape[-1]:
        raise ValueError(
            f'grounding_scores: expected regions (A, N, D) and words (B, K, '
            f'D), got {tuple(regions.shape)} and {tuple(words.shape)}.')
    z = F.normalize(regions, dim=-1)
    w = F.normalize(words, dim=-1)
    sim = torch.einsum('and,bkd->abkn', z, w)
    attn = (sim / temperature).softmax(dim=-1)
    per_word = (attn * sim).sum(dim=-1)  # (A, B, K)
    if word_mask is None:
        return per_word.mean(dim=-1)
    mask = word_mask.to(per_word)
    count = mask.sum(dim=-1)
    if (count == 0).any():
        raise ValueError('grounding_scores: a caption has no words.')
    return (per_word * mask).sum(dim=-1) / count


@MODELS.register_module()
class RegionWordGroundingLoss(nn.Module):
    """``loss_weight * L_G`` over the image-caption pairs of a batch.

    Args:
        temperature (float): ``tau`` of the region softmax and of the
            contrastive softmax.
        loss_weight (float): Weight.
        loss_name (str): Key of the loss.
    """

    def __init__(self, temperature: float = 0.07, loss_weight: float = 1.0,
                 loss_name: str = 'loss_grounding'):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.loss_name = loss_name

    def forward(self, regions: Tensor, words: Tensor,
                word_mask: Optional[Tensor] = None) -> Tensor:
        """Loss of ``B`` pairs: regions (B, N, D), words (B, K, D)."""
        if regions.shape[0] != words.shape[0]:
            raise ValueError('RegionWordGroundingLoss: images and captions '
                             'must pair up (same batch size).')
        scores = grounding_scores(regions, words, word_mask,
                                  self.temperature) / self.temperature
        target = torch.arange(scores.shape[0], device=scores.device)
        loss = F.cross_entropy(scores, target) + \
            F.cross_entropy(scores.t(), target)
        return self.loss_weight * loss
