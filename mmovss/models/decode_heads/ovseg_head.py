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

The released models (``configs/ovseg/ovseg-official_*``, converted by
:mod:`mmovss.converters.ovseg_official`) set the official code's choices,
all options with unchanged defaults: the segment-embedding MLP is 1024 wide
(``embed_channels``, ``EMBED_HIDDEN_DIM``), mask logits are upsampled to the
image before the crops and the semantic inference (``upsample_masks``,
``OVSeg.forward``), GroupNorm has 32 groups (``norm_groups``), and the
region classifier crops by slicing + bicubic resizing, scales CLIP logits by
a fixed 100 and puts the first mask prompt before the position embedding
(:class:`RegionCLIPClassifier` ``crop_resize='slice'``, ``logit_scale=100``,
``mask_prompt_at_embed=True``).
"""
from typing import Optional, Sequence

from torch import Tensor

from mmseg.models.utils import MLP
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
        ensemble_weight (float): ``w``; 0 uses the mask model alone (unless
            ``clip_only_at_zero``).
        clip_only_at_zero (bool): With ``ensemble_weight=0`` use CLIP's
            probabilities alone and drop the proposals CLIP did not classify
            (empty masks), as the official ``OVSeg.semantic_inference``
            (``CLIP_ENSEMBLE True`` with weight 0, e.g. its demo config);
            False (default): the mask model alone at 0 (the ensemble's limit,
            the official ``CLIP_ENSEMBLE False``).
        region_classifier (dict): The (mask-adapted) CLIP
            :class:`RegionCLIPClassifier` config (``mask_prompt_depth=3``).
        embed_layers (int): Segment-embedding MLP layers (2, as OVSeg).
        embed_channels (int, optional): Hidden width of that MLP (the
            released models: 1024, ``EMBED_HIDDEN_DIM``); None: the query
            decoder's width.
        **kwargs: :class:`ZegFormerHead` arguments (``skip_score_threshold``
            ``t``: skipped proposals keep ``p_mask^(1 - w)``, a change of at
            most ``t^(1 - w)`` per class) except ``mode``,
            ``fusion_lambda``, ``seen_vocabulary`` and ``calibration``.
    """

    def __init__(self, *args, region_classifier: dict,
                 ensemble_weight: float = 0.7, embed_layers: int = 2,
                 embed_channels: Optional[int] = None,
                 clip_only_at_zero: bool = False, **kwargs):
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
        self.clip_only_at_zero = clip_only_at_zero
        if embed_channels is not None:
            proj = self.segment_proj
            self.segment_proj = MLP(proj.layers[0].in_features, embed_channels,
                                    proj.layers[-1].out_features, embed_layers)

    def class_probs(self, inputs: Sequence[Tensor], masks: Tensor,
                    seg_logits: Tensor,
                    class_embeds: ClassEmbeddings,
                    region_embeds: Optional[ClassEmbeddings] = None) -> Tensor:
        mask_probs = seg_logits.softmax(dim=-1)[..., :-1]
        if self.ensemble_weight == 0 and not self.clip_only_at_zero:
            return mask_probs
        if region_embeds is None:
            region_embeds = self.region_class_embeds(class_embeds)
        clip_logits, valid = self.region_logits(inputs, masks, region_embeds,
                                                self.crop_keep(seg_logits))
        if self.ensemble_weight == 0:  # unclassified proposals contribute nothing
            return clip_logits.softmax(dim=-1) * valid[..., None].to(clip_logits)
        return ovseg_ensemble(mask_probs, clip_logits.softmax(dim=-1), valid,
                              self.ensemble_weight)
