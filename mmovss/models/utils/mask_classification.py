"""Mask classification: class logits of mask queries and semantic inference.

Shared by every mask-classification head (SAN, FC-CLIP, and the two-stage
methods ZegFormer, OVSeg, OpenSeg, SAM+CLIP). A head predicts ``Q`` mask
logits ``m_q`` (B, Q, h, w) and, for each query, logits ``z_q`` over the
vocabulary plus one "no object" (void) entry (B, Q, C + 1).
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ..text_encoders.class_embeddings import ClassEmbeddings

__all__ = [
    'open_vocab_class_logits', 'semantic_inference', 'geometric_ensemble',
    'seen_class_mask'
]


def open_vocab_class_logits(query_embeds: Tensor,
                            class_embeds: ClassEmbeddings,
                            void_embed: Optional[Tensor] = None,
                            logit_scale: Optional[Union[float, Tensor]] = None
                            ) -> Tensor:
    """Scaled cosine logits of query embeddings against the vocabulary.

    ``z_{q,n} = tau * <e_q / |e_q|, t_n>`` for every name embedding ``t_n``,
    reduced over synonyms to classes (max or mean, as the
    :class:`ClassEmbeddings` says), then the void logit
    ``tau * <e_q / |e_q|, v / |v|>`` is appended when ``void_embed`` is given
    (the learned background embedding of SAN, Xu et al., CVPR 2023, Sec. 3.3;
    FC-CLIP's void embedding, Yu et al., NeurIPS 2023, Sec. 3.2).

    Args:
        query_embeds (Tensor): (..., D) query embeddings (any norm).
        class_embeds (ClassEmbeddings): The vocabulary's name embeddings.
        void_embed (Tensor, optional): (D,) or (1, D) void embedding.
        logit_scale (float | Tensor, optional): ``tau``; None uses
            ``class_embeds.logit_scale`` (CLIP's), else 1.

    Returns:
        Tensor: (..., C) logits, or (..., C + 1) with the void logit last.
    """
    if query_embeds.shape[-1] != class_embeds.embeds.shape[-1]:
        raise ValueError(
            f'Query embeddings have {query_embeds.shape[-1]} channels but the '
            f'class embeddings have {class_embeds.embeds.shape[-1]}; the head '
            f'and the text encoder must share CLIP\'s joint dimension.')
    if logit_scale is None:
        logit_scale = class_embeds.logit_scale
    query = F.normalize(query_embeds, dim=-1)
    text = class_embeds.embeds.to(query)
    logits = class_embeds.reduce(query @ text.t(), dim=-1)
    if void_embed is not None:
        void = F.normalize(void_embed.reshape(-1, 1).to(query), dim=0)
        logits = torch.cat([logits, query @ void], dim=-1)
    if logit_scale is not None:
        logits = logits * torch.as_tensor(logit_scale).to(logits)
    return logits


def semantic_inference(mask_logits: Tensor,
                       class_logits: Tensor,
                       size: Optional[Sequence[int]] = None,
                       class_probs: bool = False) -> Tensor:
    """Per-class scores from mask proposals and their class logits.

    ``S_c(p) = sum_q softmax(z_q)_c * sigmoid(m_q(p))`` over the ``C``
    non-void classes (MaskFormer, Cheng et al., NeurIPS 2021, Sec. 3.4,
    "semantic inference"; used by SAN and FC-CLIP).

    Args:
        mask_logits (Tensor): (B, Q, h, w) mask logits.
        class_logits (Tensor): (B, Q, C + 1) class logits, void last; with
            ``class_probs=True``, (B, Q, C) class probabilities instead.
        size (Sequence[int], optional): Mask logits are bilinearly resized
            to this (H, W) before the sigmoid, as the reference
            implementations do.
        class_probs (bool): ``class_logits`` already are void-free
            probabilities.

    Returns:
        Tensor: (B, C, H, W) scores.
    """
    if mask_logits.dim() != 4 or class_logits.dim() != 3 or \
            mask_logits.shape[:2] != class_logits.shape[:2]:
        raise ValueError(
            f'semantic_inference: expected mask logits (B, Q, h, w) and class '
            f'logits (B, Q, C+1) with the same B and Q, got '
            f'{tuple(mask_logits.shape)} and {tuple(class_logits.shape)}.')
    if size is not None and tuple(mask_logits.shape[-2:]) != tuple(size):
        mask_logits = F.interpolate(mask_logits, size=tuple(size),
                                    mode='bilinear', align_corners=False)
    probs = class_logits if class_probs else \
        class_logits.softmax(dim=-1)[..., :-1]
    return torch.einsum('bqc,bqhw->bchw', probs, mask_logits.sigmoid())


def geometric_ensemble(in_vocab_logits: Tensor,
                       out_vocab_logits: Tensor,
                       seen: Tensor,
                       alpha: float = 0.4,
                       beta: float = 0.8,
                       valid: Optional[Tensor] = None,
                       eps: float = 1e-8) -> Tensor:
    """FC-CLIP's geometric ensemble of in- and out-of-vocabulary scores.

    With ``p_in`` the softmax of the in-vocabulary logits over the ``C``
    classes (void removed), ``p_out`` that of the out-of-vocabulary logits,
    and ``p_void`` the void probability of the in-vocabulary softmax
    (Yu et al., NeurIPS 2023, Eq. 6)::

        s_c = p_in,c^(1 - alpha) * p_out,c^alpha   if c is a seen class
        s_c = p_in,c^(1 - beta)  * p_out,c^beta    otherwise
        p_c = softmax(log s)_c * (1 - p_void),  p_void kept as class C + 1

    Queries whose mask has no positive pixel at the CLIP resolution
    (``valid`` False) keep ``p_in`` (``alpha = beta = 0``), as the reference
    implementation's ``ensemble_on_valid_mask``.

    Args:
        in_vocab_logits (Tensor): (B, Q, C + 1) logits of the trained
            classifier, void last.
        out_vocab_logits (Tensor): (B, Q, C) or (B, Q, C + 1) logits of the
            frozen CLIP (a void entry is dropped).
        seen (Tensor): (C,) bool, classes of the training vocabulary.
        alpha (float): Out-of-vocabulary weight of seen classes.
        beta (float): Out-of-vocabulary weight of unseen classes.
        valid (Tensor, optional): (B, Q) bool, queries with a non-empty mask.
        eps (float): Added before the final log.

    Returns:
        Tensor: (B, Q, C + 1) log-probabilities, void last (ready for
        :func:`semantic_inference`).
    """
    num_classes = in_vocab_logits.shape[-1] - 1
    if out_vocab_logits.shape[-1] == num_classes + 1:
        out_vocab_logits = out_vocab_logits[..., :-1]
    if out_vocab_logits.shape[-1] != num_classes or \
            seen.numel() != num_classes:
        raise ValueError(
            f'geometric_ensemble: {num_classes} in-vocabulary classes (+void), '
            f'but out-of-vocabulary logits have {out_vocab_logits.shape[-1]} '
            f'and the seen mask {seen.numel()} entries.')
    log_p_in = in_vocab_logits[..., :-1].log_softmax(dim=-1)
    log_p_out = out_vocab_logits.log_softmax(dim=-1)
    seen = seen.to(device=log_p_in.device, dtype=torch.bool)
    weight = torch.where(seen, log_p_in.new_tensor(alpha),
                         log_p_in.new_tensor(beta)).expand_as(log_p_in)
    if valid is not None:
        weight = weight * valid.to(log_p_in.dtype).unsqueeze(-1)
    # log(p_in^(1-w) p_out^w), in log space (no 0 ** w underflow)
    log_s = (1 - weight) * log_p_in + weight * log_p_out
    p_void = in_vocab_logits.softmax(dim=-1)[..., -1:]
    probs = torch.cat([log_s.softmax(dim=-1) * (1 - p_void), p_void], dim=-1)
    return torch.log(probs + eps)


def seen_class_mask(vocabulary, seen_names: Sequence[str]) -> Tensor:
    """Which classes of a vocabulary were seen in training.

    A class is seen when any of its names (synonyms) equals a training
    name, case-insensitively (FC-CLIP's category-overlap mask).

    Args:
        vocabulary: A :class:`~mmovss.vocab.Vocabulary`.
        seen_names (Sequence[str]): All names of the training vocabulary.

    Returns:
        Tensor: (C,) bool.
    """
    seen = {n.strip().lower() for n in seen_names}
    return torch.tensor([
        any(n.strip().lower() in seen for n in names)
        for names in vocabulary.classes
    ], dtype=torch.bool)
