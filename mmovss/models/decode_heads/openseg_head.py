"""OpenSeg: scaling open-vocabulary image segmentation with image-level
labels (Ghiasi et al., ECCV 2022).

* Class-agnostic mask proposals (Sec. 3.1): an FPN over the backbone
  (:class:`~mmovss.models.utils.maskformer_decoder.FPNPixelDecoder`) gives
  per-pixel features ``F``; ``N`` queries cross-attend to the coarsest map
  (:class:`~mmovss.models.utils.maskformer_decoder.QueryDecoder`) and each
  proposal is ``s_i = sigmoid(q_i . F_PE)`` with ``F_PE`` the features plus
  a sine position encoding.
* Region features (Sec. 3.2): ``z_i = W (sum_p s_i(p) F(p) / sum_p
  s_i(p))``, the proposal-weighted average of the features, projected into
  the text embedding space.
* Losses (Sec. 3.3): the class-agnostic mask loss ``L_S``
  (:class:`~mmovss.models.losses.ClassAgnosticDiceLoss`) on segmentation
  data and the region-word grounding loss ``L_G``
  (:class:`~mmovss.models.losses.RegionWordGroundingLoss`) on image-caption
  data; ``L = L_G + alpha L_S``.
* Inference: each region is classified against the class names,
  ``p_i = softmax_c(cos(z_i, t_c) / tau)``, and the per-pixel score is
  ``S_c(p) = sum_i s_i(p) p_i(c)``.

Use it with :class:`~mmovss.models.segmentors.OpenSegEncoderDecoder`,
which embeds the words of the batch's captions for the grounding loss.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.mask_classification import open_vocab_class_logits, semantic_inference
from ..utils.maskformer_decoder import MaskFormerDecoder
from ..utils.position_embedding import sine_position_embedding
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['OpenSegHead']


@MODELS.register_module()
class OpenSegHead(OpenVocabDecodeHead):
    """OpenSeg mask proposals, region features and losses.

    Args:
        in_channels (Sequence[int]): Channels of the four backbone maps.
        embed_dim (int): Text embedding dimension.
        channels (int): Decoder width (256).
        mask_channels (int): Per-pixel feature channels (256).
        num_queries (int): Proposals ``N`` (128).
        num_layers, num_heads, ffn_channels, dropout: Query decoder sizes.
        temperature (float): ``tau`` of the inference classification.
        mask_loss (dict): ``alpha L_S`` config.
        grounding_loss (dict): ``L_G`` config.
        query_features (bool): Queries start from learned features instead
            of zeros (:class:`~mmovss.models.utils.maskformer_decoder.QueryDecoder`).
    """

    seg_logits_kind = 'scores'  # semantic inference over its proposals

    #: On the cast path only the towers are cast; this head stays float32
    #: (checked in tests/test_low_precision_heads.py).
    float32_on_cast_path = True
    text_width_key = 'embed_dim'  # the region embeddings

    def __init__(self,
                 in_channels: Sequence[int],
                 embed_dim: int,
                 channels: int = 256,
                 mask_channels: int = 256,
                 num_queries: int = 128,
                 num_layers: int = 6,
                 num_heads: int = 8,
                 ffn_channels: int = 2048,
                 dropout: float = 0.1,
                 temperature: float = 0.01,
                 mask_loss: dict = dict(type='ClassAgnosticDiceLoss',
                                        loss_weight=1.0),
                 grounding_loss: dict = dict(type='RegionWordGroundingLoss',
                                             temperature=0.07),
                 query_features: bool = False,
                 **kwargs):
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(list(in_channels), channels,
                         input_transform='multiple_select',
                         in_index=[0, 1, 2, 3], **kwargs)
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        self.mask_decoder = MaskFormerDecoder(in_channels, channels,
                                              mask_channels, num_queries,
                                              num_layers, num_heads,
                                              ffn_channels, dropout,
                                              query_features=query_features)
        self.embed_dim = embed_dim
        self.region_proj = nn.Linear(mask_channels, embed_dim)
        self.temperature = temperature
        self.mask_loss = MODELS.build(mask_loss)
        self.grounding_loss = MODELS.build(grounding_loss)

    def proposals(self, inputs: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
        """Mask logits (B, N, H/4, W/4) and region embeddings (B, N, D)."""
        feats = self._transform_inputs(inputs)
        pixel, _, states = self.mask_decoder(feats)
        pos = sine_position_embedding(pixel, pixel.shape[1] // 2)
        masks = torch.einsum('bqc,bchw->bqhw',
                             self.mask_decoder.mask_embed(states[-1]),
                             pixel + pos)
        return masks, self._region_embeddings(pixel, masks)

    def _region_embeddings(self, pixel: Tensor, mask_logits: Tensor) -> Tensor:
        """(B, N, D) ``z_i = W (sum_p s_i(p) F(p) / sum_p s_i(p))`` (Sec. 3.2)
        of (B, N, h, w) mask logits at the size of the (B, C, h, w) pixel
        features."""
        weights = mask_logits.sigmoid()
        pooled = torch.einsum('bqhw,bchw->bqc', weights, pixel) / \
            (weights.sum(dim=(-2, -1))[..., None] + 1e-6)
        return self.region_proj(pooled)

    def region_embeddings_of_masks(self, inputs: Sequence[Tensor],
                                   mask_logits: Tensor) -> Tensor:
        """(B, K, D) region embeddings of given (B, K, H, W) mask logits
        (e.g. ground-truth segments), resized bilinearly to the pixel
        features: what the head's classifier sees of a perfect mask."""
        pixel = self.mask_decoder.pixel_decoder(self._transform_inputs(inputs))
        mask_logits = F.interpolate(mask_logits.to(pixel.dtype),
                                    size=pixel.shape[-2:], mode='bilinear',
                                    align_corners=False)
        return self._region_embeddings(pixel, mask_logits)

    def region_class_logits(self, regions: Tensor,
                            class_embeds: ClassEmbeddings) -> Tensor:
        """(B, N, C) ``cos(z_i, t_c) / tau``."""
        return open_vocab_class_logits(regions, class_embeds, None,
                                       1.0 / self.temperature)

    def forward_sets(self, inputs: Sequence[Tensor],
                     class_embeds: ClassEmbeddings
                     ) -> Tuple[List[Tensor], List[Tensor]]:
        """The proposals as a mask-classification set (for
        :mod:`mmovss.evaluation.stage_oracles`): ``[(B, N, H/4, W/4)]``
        mask logits and ``[(B, N, C + 1)]`` class logits whose last ("no
        object") column is ``-inf``: OpenSeg scores no objectness, every
        proposal counts."""
        masks, regions = self.proposals(inputs)
        logits = self.region_class_logits(regions, class_embeds)
        void = logits.new_full(logits.shape[:-1] + (1,), float('-inf'))
        return [masks], [torch.cat([logits, void], dim=-1)]

    def predict_masks(self, inputs: Sequence[Tensor]) -> Tensor:
        """(B, N, H/4, W/4) class-agnostic proposal logits."""
        return self.proposals(inputs)[0]

    def forward(self, inputs: Sequence[Tensor],
                class_embeds: ClassEmbeddings) -> Tensor:
        """Per-class scores (B, C, H/4, W/4)."""
        masks, regions = self.proposals(inputs)
        probs = self.region_class_logits(regions, class_embeds).softmax(-1)
        return semantic_inference(masks, probs, class_probs=True)

    # ------------------------------------------------------------ losses
    def _segmentation_targets(self, samples: SampleList
                              ) -> Tuple[List[int], List[Tensor],
                                         List[Tensor]]:
        """Images with segments: index, (M, H, W) masks, valid pixels."""
        index, masks, valid = [], [], []
        for b, sample in enumerate(samples):
            if 'gt_sem_seg' not in sample:
                continue
            seg = sample.gt_sem_seg.data[0]
            labels = [int(c) for c in torch.unique(seg)
                      if int(c) != self.ignore_index]
            if not labels:
                continue
            index.append(b)
            masks.append(torch.stack([seg == c for c in labels]))
            valid.append(seg != self.ignore_index)
        return index, masks, valid

    @staticmethod
    def _caption_targets(samples: SampleList,
                         word_embeds: Optional[ClassEmbeddings]):
        """Images with caption words: index, (B', K, D) words, (B', K)."""
        if word_embeds is None:
            return [], None, None
        lookup = {n.lower(): i for i, n in
                  enumerate(word_embeds.vocabulary.names)}
        index, rows = [], []
        for b, sample in enumerate(samples):
            words = sample.metainfo.get('caption_words') or []
            ids = [lookup[w.lower()] for w in words if w.lower() in lookup]
            if ids:
                index.append(b)
                rows.append(ids)
        if not rows:
            return [], None, None
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros(len(rows), length, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = True
        embeds = word_embeds.embeds
        return index, embeds[ids.to(embeds.device)], mask.to(embeds.device)

    def loss(self, inputs: Sequence[Tensor],
             class_embeds: Optional[ClassEmbeddings],
             batch_data_samples: SampleList, train_cfg: ConfigType) -> dict:
        """``alpha L_S`` on images with segments, ``L_G`` on images with
        captions.

        Args:
            class_embeds (ClassEmbeddings, optional): Embeddings of the
                caption words of the batch (names = words); None when the
                batch has no captions.
        """
        masks, regions = self.proposals(inputs)
        zero = masks.sum() * 0.0 + regions.sum() * 0.0
        losses = {}
        seg_idx, gt_masks, valid = self._segmentation_targets(
            batch_data_samples)
        losses[self.mask_loss.loss_name] = self.mask_loss(
            [masks[b] for b in seg_idx], gt_masks, valid) if seg_idx else zero
        cap_idx, words, word_mask = self._caption_targets(batch_data_samples,
                                                          class_embeds)
        if len(cap_idx) >= 2:  # a contrastive loss needs negatives
            losses[self.grounding_loss.loss_name] = self.grounding_loss(
                regions[cap_idx], words.to(regions), word_mask)
        else:
            losses[self.grounding_loss.loss_name] = zero
        return losses
