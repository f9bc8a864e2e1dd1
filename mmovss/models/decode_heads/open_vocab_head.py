"""Base class of open-vocabulary decode heads.

An open-vocabulary head has no class-sized layer: it scores features against
the class embeddings it is handed at every call
(:class:`~mmovss.models.text_encoders.ClassEmbeddings`), so the vocabulary
can change between calls. It keeps mmseg's :class:`BaseDecodeHead` input
selection (``in_index``, ``input_transform``), losses (``loss_decode``,
``ignore_index``, ``sampler``) and output resizing (``predict_by_feat``).
"""
from abc import abstractmethod
from typing import List, Tuple

import torch
from torch import Tensor

from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.utils import ConfigType, SampleList

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.width_check import TEXT, DeclaredWidth, mmseg_input_widths

__all__ = ['OpenVocabDecodeHead']


class OpenVocabDecodeHead(BaseDecodeHead):
    """mmseg's ``BaseDecodeHead`` with class embeddings as an input.

    Subclasses implement :meth:`forward` returning per-*class* logits
    (B, num_classes, h, w), i.e. after ``class_embeds.reduce``.

    Args:
        in_channels (int | Sequence[int]): Input channels.
        channels (int): Channels of the head's features.
        **kwargs: Other :class:`BaseDecodeHead` arguments, except
            ``num_classes``/``out_channels`` (set by the vocabulary).
    """

    #: Whether the head runs with its weights cast to low precision
    #: (``test_cfg.precision_mode='cast'`` of
    #: :class:`~mmovss.models.segmentors.OpenVocabEncoderDecoder`): set by
    #: the heads checked in bf16 against float32 (tests/test_low_precision.py).
    supports_low_precision_cast = False
    #: What the (C, H, W) ``seg_logits`` of a prediction hold, for the
    #: confidence the inferencer reports (:func:`mmovss.apis.class_stats.class_scores`):
    #: ``'logits'`` (softmax over classes gives probabilities), ``'probabilities'``
    #: or ``'scores'`` (non-negative, not normalised: MaskFormer's semantic
    #: inference ``S_c = sum_q p_q(c) sigmoid(m_q)``, normalised over classes).
    seg_logits_kind = 'logits'
    #: On that path the head gets the class embeddings in float32 instead of
    #: its dtype (:meth:`OpenVocabEncoderDecoder.head_class_embeds`).
    float32_class_embeddings = False
    #: Whether the cast path casts the towers only and runs this head in
    #: float32 on float32 features, as under autocast (the two-stage heads
    #: and OpenSeg's, checked in bf16 against float32: their cost is the
    #: towers and the CLIP crop forwards, not the head).
    float32_on_cast_path = False

    def __init__(self, in_channels, channels, init_cfg=None, **kwargs):
        for key in ('num_classes', 'out_channels'):
            if kwargs.pop(key, None) is not None:
                raise ValueError(
                    f'{type(self).__name__}: `{key}` is set by the vocabulary '
                    f'at run time; remove it from the head config.')
        super().__init__(in_channels, channels, num_classes=1,
                         init_cfg=init_cfg, **kwargs)
        self.conv_seg = None  # no class-sized layer
        self.num_classes = self.out_channels = None

    #: False for a head none of whose layers is sized by ``in_channels`` or the
    #: text width (it compares the CLIP's embeddings as they are, or takes
    #: every width from its own CLIP): :meth:`declared_widths` is empty, so a
    #: value left from another CLIP is harmless and not refused.
    declares_widths = True
    #: The config key (an attribute of the head) of the class-embedding width
    #: where a layer of the head is sized by it (``'embed_dim'``): declared by
    #: :meth:`declared_widths` with source
    #: :data:`~mmovss.models.utils.width_check.TEXT`. None: no such key (a head
    #: whose text width is an ``in_channels`` entry, as CAT-Seg's, declares it
    #: in its own :meth:`declared_widths`).
    text_width_key = None

    def declared_widths(self) -> List[DeclaredWidth]:
        """The widths this head expects of its inputs, with their config keys.

        Checked against the towers when the segmentor is built
        (:func:`~mmovss.models.utils.width_check.check_head_widths`): the
        inputs' (:meth:`input_widths`), then the class embeddings' where
        :attr:`text_width_key` names it. A head that scores against the class
        embeddings otherwise overrides this. None where
        :attr:`declares_widths` is False.
        """
        if not self.declares_widths:
            return []
        widths = self.input_widths()
        if self.text_width_key is not None:
            widths.append(DeclaredWidth(self.text_width_key, None, TEXT,
                                        getattr(self, self.text_width_key)))
        return widths

    def input_widths(self) -> List[DeclaredWidth]:
        """The widths this head expects of the backbone (or neck) outputs it
        reads. By default mmseg's contract
        (:func:`~mmovss.models.utils.width_check.mmseg_input_widths`); a head
        that reads its inputs otherwise overrides this."""
        return mmseg_input_widths(self)

    @abstractmethod
    def forward(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings
                ) -> Tensor:
        """Per-class logits (B, num_classes, h, w)."""

    def loss(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings,
             batch_data_samples: SampleList, train_cfg: ConfigType) -> dict:
        """Losses of the class logits against ``gt_sem_seg``."""
        seg_logits = self.forward(inputs, class_embeds)
        return self.loss_by_feat(seg_logits, batch_data_samples)

    def predict(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings,
                batch_img_metas: List[dict], test_cfg: ConfigType) -> Tensor:
        """Class logits resized to the input (crop) size."""
        seg_logits = self.forward(inputs, class_embeds)
        return self.predict_by_feat(seg_logits, batch_img_metas)

    def predict_low_res(self, inputs: Tuple[Tensor],
                        class_embeds: ClassEmbeddings,
                        batch_img_metas: List[dict],
                        test_cfg: ConfigType) -> Tensor:
        """:meth:`predict` before its final resize (per-class maps).

        ``predict(...) == predict_by_feat(predict_low_res(...))``: the
        segmentor resizes these maps a chunk of classes at a time, so large
        vocabularies never need full-size logits of all classes.
        """
        return self.forward(inputs, class_embeds)

    @staticmethod
    def predict_size(batch_img_metas: List[dict]) -> Tuple[int, int]:
        """The size mmseg's ``predict_by_feat`` resizes the logits to."""
        meta = batch_img_metas[0]
        if isinstance(meta['img_shape'], torch.Size):
            size = meta['img_shape']
        elif 'pad_shape' in meta:
            size = meta['pad_shape'][:2]
        else:
            size = meta['img_shape']
        return int(size[0]), int(size[1])

    @property
    def has_low_res_predict(self) -> bool:
        """Whether :meth:`predict_low_res` describes :meth:`predict`.

        True unless a subclass changes ``predict`` (or ``predict_by_feat``)
        without also defining ``predict_low_res``.
        """
        cls = type(self)
        own = cls.predict_low_res is not OpenVocabDecodeHead.predict_low_res
        plain = cls.predict is OpenVocabDecodeHead.predict and \
            cls.predict_by_feat is BaseDecodeHead.predict_by_feat
        return own or plain
