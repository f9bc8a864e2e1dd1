"""ZegFormer: decoupled zero-shot semantic segmentation (Ding et al., CVPR
2022).

Two sub-tasks (paper Sec. 3):

1. class-agnostic grouping: a MaskFormer decoder
   (:class:`~mmovss.models.utils.maskformer_decoder.MaskFormerDecoder`)
   predicts ``N`` masks ``m_q = sigmoid(B_q . F(I))`` and segment
   embeddings ``G_q`` (a linear projection of the query states into CLIP's
   joint space);
2. segment-level zero-shot classification, by two branches:

   * text matching of ``G_q`` (Eq. 2):
     ``p_q(c) = softmax_c(cos(G_q, T_c) / tau)`` over the class names and a
     learned "no object" embedding, ``tau = 0.01``;
   * the CLIP image encoder on the masked region of ``m_q``
     (:class:`~mmovss.models.utils.RegionCLIPClassifier`), ``p'_q(c)``,
     with the same "no object" logit of the segment branch.

``mode`` picks the paper's variants: ``'seg'`` (ZegFormer-seg: ``p_q``),
``'img'`` (``p'_q``) or ``'fusion'`` (Eq. 4)::

    p_q(c)^(1 - lambda) * p'_q(c)^lambda                   c unseen
    p_q(c)^lambda * mean_{c' seen} p'_q(c')^(1 - lambda)   c seen

(the CLIP scores of seen classes are replaced by their average, so CLIP
does not change the ranking among seen classes; ``lambda = 2/3``), as in the
released code. Without a seen vocabulary every class is treated as unseen.
Per-pixel scores are ``S_c = sum_q p_q(c) m_q`` (MaskFormer's semantic
inference) and, for generalised zero-shot evaluation, the scores of seen
classes are lowered by the calibration factor ``gamma`` (Sec. 4.1).

Inference cost is dominated by the CLIP forwards of the masked crops.
``skip_score_threshold = t > 0`` crops only proposals whose largest segment
class probability ``max_c p_q(c)`` (void included in the softmax) is at
least ``t``; a skipped proposal is scored as an empty mask is (segment
branch only). This is an approximation: a skipped proposal's probabilities
change by at most ``t^min(lambda, 1 - lambda)`` per class (both the fused and
the segment-branch value are below it, as ``p_q(c) < t``), so every
per-pixel score ``S_c`` changes by at most that times the sum of the
skipped masks' ``m_q``. ``t = 0`` (default) crops every non-empty mask,
exactly as without the option. ``mode='img'`` has no such bound and refuses
the option.

Training: Hungarian matching; focal + Dice mask losses, cross-entropy class
loss (MaskFormer's criterion, weights 20 / 1 / 1, no-object weight 0.1), on
every decoder layer.

The released models (``configs/zegformer/*_official_*``, converted by
:mod:`mmovss.converters.zegformer_official`) need the official code's
choices, all options here with unchanged defaults: the "no object"
embedding is not normalised (``normalize_void=False``: ``bg_score =
logit_scale * x_cls @ bg_feature.t()`` in ``TransformerZeroshotPredictor``),
mask logits are upsampled to the image before the crops and the semantic
inference (``upsample_masks=True``, ``MaskFormer.forward``), the CLIP branch
embeds class names with its own templates (``region_text_encoder``,
``IMAGENET_TEMPLATES_SELECT_CLIP``), GroupNorm has 32 groups at any width
(``norm_groups=32``) and the query decoder may be narrower than the pixel
decoder (``query_channels``).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmovss.vocab import Vocabulary

from mmseg.models.utils import MLP
from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.mask_classification import open_vocab_class_logits, seen_class_mask, semantic_inference
from ..utils.maskformer_decoder import MaskFormerDecoder
from .mask_classification_head import MaskClassificationHead

__all__ = ['ZegFormerHead', 'zegformer_fusion', 'MASKFORMER_CRITERION']

ZEGFORMER_MODES = ('seg', 'img', 'fusion')

#: MaskFormer's criterion: focal (20) + Dice (1) mask losses, CE (1) classes.
MASKFORMER_CRITERION = dict(
    type='MaskClassificationLoss',
    no_object_weight=0.1,
    loss_cls=dict(type='CrossEntropyLoss', loss_weight=1.0,
                  loss_name='loss_cls'),
    loss_mask=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                   loss_weight=20.0, loss_name='loss_mask'),
    loss_dice=dict(type='DiceLoss', naive_dice=True, eps=1.0,
                   ignore_index=None, loss_weight=1.0, loss_name='loss_dice'))


def zegformer_fusion(seg_probs: Tensor, img_probs: Tensor, seen: Tensor,
                     lam: float = 2. / 3.) -> Tensor:
    """ZegFormer's fusion of segment and image class probabilities (Eq. 4).

    Args:
        seg_probs (Tensor): (..., C) ``p_q`` (void removed).
        img_probs (Tensor): (..., C) ``p'_q`` (void removed).
        seen (Tensor): (C,) bool, the seen classes.
        lam (float): ``lambda``.

    Returns:
        Tensor: (..., C) fused probabilities: unseen classes
        ``p^(1-lambda) p'^lambda``; seen classes ``p^lambda * mean_seen(p')
        ^(1-lambda)``.
    """
    seen = seen.to(device=seg_probs.device, dtype=torch.bool)
    unseen_fused = seg_probs.pow(1 - lam) * img_probs.pow(lam)
    if not seen.any():
        return unseen_fused
    seen_mean = img_probs[..., seen].mean(dim=-1, keepdim=True)
    seen_fused = seg_probs.pow(lam) * seen_mean.pow(1 - lam)
    return torch.where(seen, seen_fused, unseen_fused)


@MODELS.register_module()
class ZegFormerHead(MaskClassificationHead):
    """ZegFormer head; use with :class:`TwoStageEncoderDecoder` for the image
    branch (``mode='img'`` or ``'fusion'``).

    Args:
        in_channels (Sequence[int]): Channels of the four backbone maps.
        embed_dim (int): CLIP joint dimension (segment embeddings).
        channels (int): Decoder width (256).
        mask_channels (int): Per-pixel embedding channels (256).
        num_queries (int): Segments ``N`` (100).
        num_layers, num_heads, ffn_channels, dropout: Query decoder sizes
            (6, 8, 2048, 0.1).
        embed_layers (int): Layers of the MLP projecting query states to
            segment embeddings (1: linear).
        temperature (float): ``tau`` of the segment branch (0.01).
        mode (str): ``'seg'``, ``'img'`` or ``'fusion'``.
        fusion_lambda (float): ``lambda`` of the fusion (2/3).
        seen_vocabulary: Training classes (list, file or vocabulary); the
            classes of the test vocabulary sharing a name with them are
            seen. None: all classes unseen.
        calibration (float): ``gamma`` subtracted from the scores of seen
            classes at inference (0 disables it).
        region_classifier (dict, optional): A
            :class:`RegionCLIPClassifier` config; required for ``'img'`` and
            ``'fusion'``.
        skip_score_threshold (float): ``t`` in [0, 1): in inference, do not
            crop proposals with ``max_c p_q(c) < t`` (approximate, see the
            module docstring); 0 crops all non-empty masks (exact).
        criterion (dict): :class:`MaskClassificationLoss` config.
        normalize_void (bool): L2-normalise the "no object" embedding before
            its cosine logit (default); False: ``logit = x_cls . v / tau``
            with the raw ``v`` (the official code).
        upsample_masks (bool): Resize the mask logits bilinearly to the image
            (the last input) before the CLIP crops and the semantic
            inference, returning image-size scores (the official code);
            False: scores at 1/4 resolution.
        region_text_encoder (dict, optional): A text encoder config
            (``OpenCLIPTextEncoder``) embedding the vocabulary for the CLIP
            branch with its own templates; None: the segment branch's
            class embeddings.
        norm_groups (int, optional): GroupNorm groups of the pixel decoder
            (see :class:`MaskFormerDecoder`).
        query_channels (int, optional): Query decoder width when it differs
            from ``channels``.
    """

    #: On the cast path only the towers are cast; this head stays float32
    #: (checked in tests/test_low_precision_heads.py).
    float32_on_cast_path = True
    text_width_key = 'embed_dim'  # the segment embeddings, the void embedding

    def __init__(self,
                 in_channels: Sequence[int],
                 embed_dim: int,
                 channels: int = 256,
                 mask_channels: int = 256,
                 num_queries: int = 100,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 ffn_channels: int = 2048,
                 dropout: float = 0.1,
                 embed_layers: int = 1,
                 temperature: float = 0.01,
                 mode: str = 'fusion',
                 fusion_lambda: float = 2. / 3.,
                 seen_vocabulary=None,
                 calibration: float = 0.0,
                 region_classifier: Optional[dict] = None,
                 criterion: dict = MASKFORMER_CRITERION,
                 skip_score_threshold: float = 0.0,
                 normalize_void: bool = True,
                 upsample_masks: bool = False,
                 region_text_encoder: Optional[dict] = None,
                 norm_groups: Optional[int] = None,
                 query_channels: Optional[int] = None,
                 **kwargs):
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(list(in_channels), channels, criterion=criterion,
                         input_transform='multiple_select',
                         in_index=[0, 1, 2, 3], **kwargs)
        if mode not in ZEGFORMER_MODES:
            raise ValueError(f'ZegFormerHead: mode={mode!r}, use one of '
                             f'{ZEGFORMER_MODES}.')
        if mode != 'seg' and region_classifier is None:
            raise ValueError(f"ZegFormerHead: mode='{mode}' classifies masked "
                             f'regions with CLIP; give a region_classifier '
                             f"(RegionCLIPClassifier) or use mode='seg'.")
        if not 0.0 <= skip_score_threshold < 1.0:
            raise ValueError(f'ZegFormerHead: skip_score_threshold must be in '
                             f'[0, 1), got {skip_score_threshold}.')
        if mode == 'img' and skip_score_threshold:
            raise ValueError("ZegFormerHead: skip_score_threshold needs "
                             "mode='fusion' (in mode='img' a skipped proposal"
                             "'s scores are not bounded); set it to 0.")
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        self.mask_decoder = MaskFormerDecoder(in_channels, channels,
                                              mask_channels, num_queries,
                                              num_layers, num_heads,
                                              ffn_channels, dropout,
                                              norm_groups=norm_groups,
                                              query_channels=query_channels)
        query_channels = query_channels or channels
        self.segment_proj = MLP(query_channels, query_channels, embed_dim,
                                embed_layers)
        self.embed_dim = embed_dim
        self.void_embed = nn.Parameter(torch.randn(1, embed_dim) * 0.02)
        self.temperature = temperature
        self.mode = mode
        self.fusion_lambda = fusion_lambda
        self.seen_names = () if seen_vocabulary is None else \
            Vocabulary.build(seen_vocabulary).names
        self.calibration = calibration
        self.region_classifier = None if region_classifier is None else \
            MODELS.build(region_classifier)
        self.skip_score_threshold = skip_score_threshold
        self.normalize_void = normalize_void
        self.upsample_masks = upsample_masks
        self.region_text_encoder = None if region_text_encoder is None else \
            MODELS.build(region_text_encoder)

    def seg_logits(self, states: Tensor,
                   class_embeds: ClassEmbeddings) -> Tensor:
        """(B, Q, C + 1) logits ``cos(G_q, T_c) / tau``, void last."""
        embeds = self.segment_proj(states)
        if self.normalize_void:
            return open_vocab_class_logits(embeds, class_embeds,
                                           self.void_embed,
                                           1.0 / self.temperature)
        logits = open_vocab_class_logits(embeds, class_embeds, None,
                                         1.0 / self.temperature)
        void = F.normalize(embeds, dim=-1) @ self.void_embed.to(embeds).t()
        return torch.cat([logits, void / self.temperature], dim=-1)

    def region_class_embeds(self, class_embeds: ClassEmbeddings
                            ) -> ClassEmbeddings:
        """The class embeddings of the CLIP branch: ``region_text_encoder``'s
        for the same vocabulary, else ``class_embeds``."""
        if self.region_text_encoder is None:
            return class_embeds
        out = self.region_text_encoder(class_embeds.vocabulary)
        return out.to(class_embeds.embeds.device)

    def forward_sets(self, inputs: Sequence[Tensor],
                     class_embeds: ClassEmbeddings
                     ) -> Tuple[List[Tensor], List[Tensor]]:
        """Mask logits and class logits of every decoder layer."""
        feats = self._transform_inputs(inputs)
        _, masks, states = self.mask_decoder(feats)
        return masks, [self.seg_logits(s, class_embeds) for s in states]

    def predict_masks(self, inputs: Sequence[Tensor]) -> Tensor:
        """(B, Q, H/4, W/4) class-agnostic mask logits (proposals)."""
        _, masks, _ = self.mask_decoder(self._transform_inputs(inputs))
        return masks[-1]

    def seen_mask(self, class_embeds: ClassEmbeddings) -> Tensor:
        return seen_class_mask(class_embeds.vocabulary, self.seen_names)

    def crop_keep(self, seg_logits: Tensor) -> Optional[Tensor]:
        """(B, Q) bool, the proposals worth a CLIP crop: ``max_c p_q(c) >=
        skip_score_threshold`` (void in the softmax, not in the max); None
        (all) when the threshold is 0."""
        if not self.skip_score_threshold:
            return None
        probs = seg_logits.softmax(dim=-1)[..., :-1]
        return probs.amax(dim=-1) >= self.skip_score_threshold

    def region_logits(self, inputs: Sequence[Tensor], masks: Tensor,
                      class_embeds: ClassEmbeddings,
                      keep: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """CLIP logits (B, Q, C) of the masked image regions and (B, Q) the
        classified masks (non-empty and in ``keep``); the image is the last
        input; ``class_embeds`` are the CLIP branch's
        (:meth:`region_class_embeds`)."""
        pixels = inputs[-1]
        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(
                f'{type(self).__name__}: the last input must be the image '
                f'(B, 3, H, W); use TwoStageEncoderDecoder as the segmentor.')
        return self.region_classifier(pixels, masks, class_embeds, keep=keep)

    def class_probs(self, inputs: Sequence[Tensor], masks: Tensor,
                    seg_logits: Tensor,
                    class_embeds: ClassEmbeddings,
                    region_embeds: Optional[ClassEmbeddings] = None) -> Tensor:
        """(B, Q, C) class probabilities of the chosen ``mode``;
        ``region_embeds`` (optional) replace :meth:`region_class_embeds`."""
        seg_probs = seg_logits.softmax(dim=-1)[..., :-1]
        if self.mode == 'seg':
            return seg_probs
        if region_embeds is None:
            region_embeds = self.region_class_embeds(class_embeds)
        clip_logits, valid = self.region_logits(
            inputs, masks, region_embeds, self.crop_keep(seg_logits))
        # the image branch shares the segment branch's "no object" logit
        img_probs = torch.cat([clip_logits, seg_logits[..., -1:]],
                              dim=-1).softmax(dim=-1)[..., :-1]
        if self.mode == 'img':
            probs = img_probs
        else:
            probs = zegformer_fusion(seg_probs, img_probs,
                                     self.seen_mask(class_embeds),
                                     self.fusion_lambda)
        # empty (or skipped) masks are not cropped: segment branch's scores
        return torch.where(valid[..., None], probs, seg_probs)

    def forward(self, inputs: Sequence[Tensor],
                class_embeds: ClassEmbeddings,
                region_embeds: Optional[ClassEmbeddings] = None) -> Tensor:
        """Per-class scores (B, C, H/4, W/4), or (B, C, H, W) with
        ``upsample_masks``; ``region_embeds``: see :meth:`class_probs`."""
        masks, logits = self.forward_sets(inputs, class_embeds)
        masks = masks[-1]
        if self.upsample_masks:
            masks = F.interpolate(masks, size=inputs[-1].shape[-2:],
                                  mode='bilinear', align_corners=False)
        if region_embeds is None:  # subclasses (OVSegHead) take four arguments
            probs = self.class_probs(inputs, masks, logits[-1], class_embeds)
        else:
            probs = self.class_probs(inputs, masks, logits[-1], class_embeds,
                                     region_embeds=region_embeds)
        scores = semantic_inference(masks, probs, class_probs=True)
        if self.calibration:
            seen = self.seen_mask(class_embeds).to(scores.device)
            scores = scores - self.calibration * seen.to(scores).view(
                1, -1, 1, 1)
        return scores
