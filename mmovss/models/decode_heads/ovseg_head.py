"""OVSeg: open-vocabulary segmentation with mask-adapted CLIP (Liang et al.,
CVPR 2023).

Two stages (paper Sec. 3.1, Fig. 2):

1. a MaskFormer (the decoder of :class:`ZegFormerHead`, whose segment
   embeddings are matched to the CLIP text embeddings of the class names and
   a learned "no object" embedding, ``tau = 0.01``) proposes ``N`` masks and
   classifies them, ``p_mask``;
2. the *mask-adapted* CLIP
   (:class:`~mmovss.models.utils.RegionCLIPClassifier` with mask prompts,
   trained by :class:`~mmovss.models.segmentors.MaskPromptTuner`)
   classifies the masked crop of every proposal, ``p_clip``.

Both are combined for all classes by the geometric ensemble of the released
implementation (``CLIP_ENSEMBLE_WEIGHT``)::

    p = p_mask^(1 - w) * p_clip^w,   w = 0.7

with ``p_clip = 1`` for empty masks, then ``S_c = sum_q p_q(c) m_q``.
Training of the mask model is ZegFormer's (MaskFormer's criterion).
"""
from typing import Sequence

from torch import Tensor

from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from .zegformer_head import ZegFormerHead

__all__ = ['OVSegHead', 'ovseg_ensemble']


def ovseg_ensemble(mask_probs: Tensor, clip_probs: Tensor, valid: Tensor,
                   weight: float = 0.7) -> Tensor:
    """``p_mask^(1 - w) * p_clip^w``, ``p_clip = 1`` where ``valid`` is False.

    Args:
        mask_probs (Tensor): (B, Q, C) mask-model probabilities.
        clip_probs (Tensor): (B, Q, C) CLIP probabilities.
        valid (Tensor): (B, Q) bool, proposals with a non-empty mask.
        weight (float): ``w``.
    """
    clip_probs = clip_probs.masked_fill(~valid[..., None], 1.0)
    return mask_probs.pow(1 - weight) * clip_probs.pow(weight)


@MODELS.register_module()
class OVSegHead(ZegFormerHead):
    """OVSeg head; use with :class:`TwoStageEncoderDecoder`.

    Args:
        ensemble_weight (float): ``w``; 0 uses the mask model alone.
        region_classifier (dict): The (mask-adapted) CLIP
            :class:`RegionCLIPClassifier` config (``mask_prompt_depth=3``).
        embed_layers (int): Segment-embedding MLP layers (2, as OVSeg).
        **kwargs: :class:`ZegFormerHead` arguments (``skip_score_threshold``
            ``t``: skipped proposals keep ``p_mask^(1 - w)``, a change of at
            most ``t^(1 - w)`` per class) except ``mode``,
            ``fusion_lambda``, ``seen_vocabulary`` and ``calibration``.
    """

    def __init__(self, *args, region_classifier: dict,
                 ensemble_weight: float = 0.7, embed_layers: int = 2,
                 **kwargs):
        for key in ('mode', 'fusion_lambda', 'seen_vocabulary',
                    'calibration'):
            if key in kwargs:
                raise ValueError(f'OVSegHead: `{key}` is a ZegFormer option; '
                                 f'OVSeg ensembles all classes with '
                                 f'`ensemble_weight`.')
        if not 0.0 <= ensemble_weight <= 1.0:
            raise ValueError(f'ensemble_weight must be in [0, 1], got '
                             f'{ensemble_weight}.')
        super().__init__(*args, mode='seg', embed_layers=embed_layers,
                         region_classifier=region_classifier, **kwargs)
        self.ensemble_weight = ensemble_weight

    def class_probs(self, inputs: Sequence[Tensor], masks: Tensor,
                    seg_logits: Tensor,
                    class_embeds: ClassEmbeddings) -> Tensor:
        mask_probs = seg_logits.softmax(dim=-1)[..., :-1]
        if self.ensemble_weight == 0:
            return mask_probs
        clip_logits, valid = self.region_logits(inputs, masks, class_embeds,
                                                self.crop_keep(seg_logits))
        return ovseg_ensemble(mask_probs, clip_logits.softmax(dim=-1), valid,
                              self.ensemble_weight)
