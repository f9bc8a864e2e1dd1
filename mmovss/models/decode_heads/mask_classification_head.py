"""Base class of mask-classification heads trained by set matching.

SAN, FC-CLIP, ZegFormer and OVSeg predict, after each of several decoder
stages, ``Q`` mask logits and per-query class logits over the vocabulary
plus "no object" (MaskFormer, Cheng et al., NeurIPS 2021, Sec. 3.2). They
are trained the same way: the queries of every supervised set are matched
one-to-one to the ground-truth masks and the matched class and mask losses
are summed (:class:`~mmovss.models.losses.MaskClassificationLoss`, Eq. 2 of
Mask2Former, Cheng et al., CVPR 2022, with deep supervision). A subclass
gives the sets (:meth:`MaskClassificationHead.forward_sets`); this class
builds the criterion and computes the loss.
"""
from abc import abstractmethod
from typing import List, Optional, Sequence, Tuple

from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import ConfigType, SampleList

from ..text_encoders.class_embeddings import ClassEmbeddings
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['MaskClassificationHead']


class MaskClassificationHead(OpenVocabDecodeHead):
    """:class:`OpenVocabDecodeHead` whose loss is set-matching.

    Args:
        in_channels (int | Sequence[int]): Input channels.
        channels (int): Channels of the head's features.
        criterion (dict): :class:`MaskClassificationLoss` config.
        **kwargs: Other :class:`OpenVocabDecodeHead` arguments.
    """

    seg_logits_kind = 'scores'  # semantic inference (mmovss.models.utils.mask_classification)

    def __init__(self, in_channels, channels, criterion: ConfigType,
                 **kwargs):
        super().__init__(in_channels, channels, **kwargs)
        self.criterion = MODELS.build(criterion)

    @abstractmethod
    def forward_sets(self, inputs: Sequence[Tensor],
                     class_embeds: ClassEmbeddings
                     ) -> Tuple[List[Tensor], List[Tensor]]:
        """Mask logits (B, Q, h, w) and class logits (B, Q, C + 1, void
        last) of every prediction set, the final set last."""

    def training_sets(self, inputs: Sequence[Tensor],
                      class_embeds: ClassEmbeddings
                      ) -> Tuple[List[Tensor], List[Tensor],
                                 Optional[List[str]]]:
        """The sets supervised in training and the loss-name prefixes of all
        but the last (None: ``d0.``, ``d1.``, ...).

        Default: every set of :meth:`forward_sets`.
        """
        masks, class_logits = self.forward_sets(inputs, class_embeds)
        return masks, class_logits, None

    def loss(self, inputs: Sequence[Tensor], class_embeds: ClassEmbeddings,
             batch_data_samples: SampleList, train_cfg: ConfigType) -> dict:
        """Matched class and mask losses of every supervised set."""
        masks, class_logits, names = self.training_sets(inputs, class_embeds)
        targets = self.criterion.targets_from_seg(batch_data_samples,
                                                  self.ignore_index)
        return self.criterion.loss_sets(class_logits, masks, targets, names)
