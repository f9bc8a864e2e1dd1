"""Per-class areas and confidence scores of one predicted label map."""
from typing import Optional

import numpy as np
import torch
from torch import Tensor

__all__ = ['SEG_LOGITS_KINDS', 'class_areas', 'class_scores', 'summarize']


def class_areas(sem_seg: Tensor, num_classes: int) -> np.ndarray:
    """Number of pixels of every class.

    Args:
        sem_seg (Tensor): (H, W) or (1, H, W) integer labels; values outside
            ``[0, num_classes)`` (ignore labels) are not counted.
        num_classes (int): Size of the vocabulary.

    Returns:
        np.ndarray: (num_classes,) int64 pixel counts.
    """
    labels = sem_seg.reshape(-1).long()
    labels = labels[(labels >= 0) & (labels < num_classes)]
    return torch.bincount(labels, minlength=num_classes).cpu().numpy()


#: What the ``seg_logits`` of a model hold (``OpenVocabDecodeHead.seg_logits_kind``).
SEG_LOGITS_KINDS = ('logits', 'probabilities', 'scores')


def class_scores(sem_seg: Tensor, seg_logits: Tensor, kind: str = 'logits') -> np.ndarray:
    """Mean confidence of every class over the pixels predicted as it.

    The confidence of a pixel is the probability of its predicted class:
    ``softmax(logits)[label]`` for logits, the value itself for
    probabilities, and ``S_label / sum_c S_c`` for the non-negative,
    unnormalised scores of mask classification (MaskFormer's semantic
    inference ``S_c = sum_q p_q(c) sigmoid(m_q)``, whose softmax would be
    near ``1 / C`` whatever the prediction).

    Args:
        sem_seg (Tensor): (H, W) or (1, H, W) integer labels.
        seg_logits (Tensor): (C, H, W) class logits, probabilities or scores.
        kind (str): One of :data:`SEG_LOGITS_KINDS`.

    Returns:
        np.ndarray: (C,) float64 scores in [0, 1]; NaN for absent classes.
    """
    if kind not in SEG_LOGITS_KINDS:
        raise ValueError(f'class_scores: kind must be one of {SEG_LOGITS_KINDS}, got {kind!r}.')
    num_classes = seg_logits.shape[0]
    labels = sem_seg.reshape(seg_logits.shape[1:]).long().to(
        seg_logits.device)
    valid = (labels >= 0) & (labels < num_classes)
    index = labels.clamp(0, num_classes - 1)[None]
    picked = seg_logits.gather(0, index)[0].float()
    if kind == 'probabilities':
        confidence = picked
    elif kind == 'scores':
        confidence = picked / seg_logits.float().sum(dim=0).clamp_min(1e-12)
    else:
        confidence = torch.exp(picked - torch.logsumexp(
            seg_logits.float(), dim=0))
    labels, confidence = labels[valid], confidence[valid]
    sums = torch.bincount(labels, weights=confidence.double(),
                          minlength=num_classes)
    counts = torch.bincount(labels, minlength=num_classes)
    scores = torch.full((num_classes, ), float('nan'), dtype=torch.float64)
    present = counts > 0
    scores[present.cpu()] = (sums[present] / counts[present]).cpu()
    return scores.numpy()


def summarize(sem_seg: Tensor, num_classes: int,
              seg_logits: Optional[Tensor] = None,
              kind: str = 'logits') -> dict:
    """Areas (pixels, fractions) and scores of every class of a label map
    (``kind``: what ``seg_logits`` hold, see :func:`class_scores`)."""
    pixels = class_areas(sem_seg, num_classes)
    total = max(int(sem_seg.numel()), 1)
    scores = (class_scores(sem_seg, seg_logits, kind)
              if seg_logits is not None else
              np.full(num_classes, np.nan))
    return dict(pixels=pixels, areas=pixels / total, scores=scores)
