"""SAM + CLIP: training-free open-vocabulary segmentation from class-agnostic
masks.

1. :class:`~mmovss.models.mask_generators.SAMMaskGenerator` proposes masks
   (Segment Anything's automatic mask generator);
2. each mask is classified by CLIP against the class names, on its masked
   crop (:class:`~mmovss.models.utils.RegionCLIPClassifier`, plain or OVSeg's
   mask-adapted CLIP) and/or by mask pooling of the dense CLIP embeddings of
   the backbone (:class:`~mmovss.models.necks.MaskPooling`, MaskCLIP-style
   dense features); with both, ``p = p_crop^w * p_pool^(1-w)``
   (renormalised);
3. the label map is assembled by :func:`label_scores_from_masks`: every
   pixel takes the class probabilities of the covering mask with the
   highest score ``max_c p(c) * IoU_pred`` (overlaps resolved by score);
   pixels no mask covers take the dense CLIP probabilities.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.mask_classification import open_vocab_class_logits
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['SAMCLIPHead', 'label_scores_from_masks']

CLASSIFIERS = ('crop', 'pool')


def label_scores_from_masks(masks: Tensor, class_probs: Tensor,
                            mask_scores: Tensor,
                            fallback: Optional[Tensor] = None) -> Tensor:
    """Per-pixel class scores from scored, possibly overlapping masks.

    Each pixel gets the class probabilities of the mask with the highest
    ``mask_scores`` among those covering it; uncovered pixels get
    ``fallback`` (zeros if None). Ties go to the earlier mask.

    Args:
        masks (Tensor): (M, H, W) bool.
        class_probs (Tensor): (M, C) class probabilities of each mask.
        mask_scores (Tensor): (M,) score of each mask.
        fallback (Tensor, optional): (C, H, W) scores of uncovered pixels.

    Returns:
        Tensor: (C, H, W) scores; ``argmax`` over C is the label map.
    """
    if masks.dim() != 3 or class_probs.dim() != 2 or \
            masks.shape[0] != class_probs.shape[0] or \
            mask_scores.shape != masks.shape[:1]:
        raise ValueError(
            f'label_scores_from_masks: expected masks (M, H, W), class '
            f'probabilities (M, C) and scores (M,), got '
            f'{tuple(masks.shape)}, {tuple(class_probs.shape)} and '
            f'{tuple(mask_scores.shape)}.')
    num_classes = class_probs.shape[1]
    h, w = masks.shape[-2:]
    if fallback is None:
        fallback = class_probs.new_zeros(num_classes, h, w)
    if masks.shape[0] == 0:
        return fallback
    score_map = torch.where(masks, mask_scores.to(class_probs)[:, None, None],
                            class_probs.new_tensor(float('-inf')))
    best, winner = score_map.max(dim=0)
    covered = torch.isfinite(best)
    scores = class_probs[winner].permute(2, 0, 1)
    return torch.where(covered[None], scores, fallback.to(scores))


@MODELS.register_module()
class SAMCLIPHead(OpenVocabDecodeHead):
    """SAM + CLIP; use with :class:`TwoStageEncoderDecoder` and an
    ``OpenCLIPViT`` backbone (its dense embeddings are ``inputs[-2]``).

    Args:
        in_channels (int): CLIP joint dimension (the dense embeddings).
        mask_generator (dict): :class:`SAMMaskGenerator` config (or any
            module mapping a (3, H, W) image to (M, H, W) masks and (M,)
            scores).
        region_classifier (dict, optional): :class:`RegionCLIPClassifier`
            config; required for ``'crop'``.
        classifiers (Sequence[str]): ``'crop'`` and/or ``'pool'``.
        crop_weight (float): ``w`` when both are used.
        use_mask_score (bool): Multiply the class confidence by SAM's
            predicted IoU to rank overlapping masks.
        mask_pooling (dict): Mask-pooling config.
    """

    seg_logits_kind = 'probabilities'  # per pixel, of the covering mask or dense CLIP
    declares_widths = False  # pools the dense embeddings (inputs[-2]) as they are

    #: On the cast path only the towers are cast; this head stays float32
    #: (checked in tests/test_low_precision_heads.py).
    float32_on_cast_path = True

    def __init__(self,
                 in_channels: int,
                 mask_generator: dict,
                 region_classifier: Optional[dict] = None,
                 classifiers: Sequence[str] = ('crop', 'pool'),
                 crop_weight: float = 0.5,
                 use_mask_score: bool = True,
                 mask_pooling: dict = dict(type='MaskPooling'),
                 **kwargs):
        super().__init__(in_channels, in_channels, **kwargs)
        classifiers = tuple(classifiers)
        if not classifiers or any(c not in CLASSIFIERS for c in classifiers):
            raise ValueError(f'SAMCLIPHead: classifiers={classifiers}; use a '
                             f'non-empty subset of {CLASSIFIERS}.')
        if 'crop' in classifiers and region_classifier is None:
            raise ValueError("SAMCLIPHead: the 'crop' classifier needs a "
                             'region_classifier (RegionCLIPClassifier).')
        if not 0.0 <= crop_weight <= 1.0:
            raise ValueError(f'crop_weight must be in [0, 1], got '
                             f'{crop_weight}.')
        self.mask_generator = MODELS.build(mask_generator)
        self.region_classifier = None if region_classifier is None else \
            MODELS.build(region_classifier)
        self.classifiers = classifiers
        self.crop_weight = crop_weight
        self.use_mask_score = use_mask_score
        self.mask_pooling = MODELS.build(mask_pooling)

    def mask_class_probs(self, pixels: Tensor, dense: Tensor, masks: Tensor,
                         class_embeds: ClassEmbeddings) -> Tensor:
        """(M, C) class probabilities of the masks of one image.

        Args:
            pixels (Tensor): (3, H, W) image in pixel values.
            dense (Tensor): (D, h, w) dense CLIP embeddings.
            masks (Tensor): (M, H, W) bool.
        """
        log_probs = []
        if 'crop' in self.classifiers:
            embeds = self.region_classifier.region_embeddings(pixels, masks)
            log_probs.append(open_vocab_class_logits(
                embeds, class_embeds).log_softmax(-1))
        if 'pool' in self.classifiers:
            logits = masks[None].to(dense) * 2 - 1  # > 0 inside
            pooled = self.mask_pooling(dense[None], logits)[0]
            log_probs.append(open_vocab_class_logits(
                pooled, class_embeds).log_softmax(-1))
        if len(log_probs) == 1:
            return log_probs[0].exp()
        w = self.crop_weight
        return (w * log_probs[0] + (1 - w) * log_probs[1]).softmax(-1)

    def forward(self, inputs: Sequence[Tensor],
                class_embeds: ClassEmbeddings) -> Tensor:
        """Per-class scores (B, C, H, W) at the input size."""
        dense, pixels = inputs[-2], inputs[-1]
        if pixels.dim() != 4 or pixels.shape[1] != 3 or dense.dim() != 4:
            raise ValueError(
                'SAMCLIPHead expects (..., dense CLIP embeddings (B, D, h, '
                'w), image (B, 3, H, W)); use TwoStageEncoderDecoder with an '
                'OpenCLIPViT backbone.')
        size = pixels.shape[-2:]
        dense_logits = open_vocab_class_logits(
            dense.permute(0, 2, 3, 1), class_embeds).permute(0, 3, 1, 2)
        fallback = F.interpolate(dense_logits, size=size, mode='bilinear',
                                 align_corners=False).softmax(dim=1)
        out = []
        for b in range(pixels.shape[0]):
            masks, iou = self.mask_generator(pixels[b])
            if masks.shape[0] == 0:
                out.append(fallback[b])
                continue
            probs = self.mask_class_probs(pixels[b], dense[b], masks,
                                          class_embeds)
            score = probs.max(dim=-1).values
            if self.use_mask_score:
                score = score * iou.to(score)
            out.append(label_scores_from_masks(masks, probs, score,
                                               fallback[b]))
        return torch.stack(out)
