"""The segmentor of training-free CLIP methods (SCLIP, NACLIP, ClearCLIP, ...).

It is :class:`OpenVocabEncoderDecoder` (vocabulary, batched sliding windows)
whose windows carry per-*name* similarities instead of class logits: the
published methods average the windows' name similarities, resize them to the
original image size and only then take the softmax over all names and the
maximum over synonyms (see :class:`~mmovss.models.decode_heads.
TrainingFreeHead`). :meth:`postprocess_result` therefore hands the averaged
similarities, and the network input for PAMR, to the head. Those are kept as
the windows' low-resolution similarities
(:class:`~mmovss.models.utils.class_maps.SlideLogits`) and expanded a
chunk of names at a time, so large vocabularies never hold full-size maps of
all names.

Low precision: ``test_cfg.inference_dtype='bf16'`` (or ``'fp16'`` on CUDA)
casts the image tower's weights once (``test_cfg.precision_mode='cast'``, the default)
(:func:`~mmovss.models.utils.low_precision.prepare_low_precision`: norms,
patch embedding, final projection and logits float32) instead of running
float32 towers under autocast; ``precision_mode='autocast'`` keeps the
autocast path of :class:`OpenVocabEncoderDecoder` (float32 weights, so the
model can switch back to fp32; the cast path cannot). The text tower is
cast too only with ``test_cfg.cast_text_encoder=True``: its embeddings are
computed once per vocabulary (and cached), and in bfloat16 they change more
labels than the rule of docs/benchmarks.md allows on the tiny test models.
"""
from typing import Optional, Union

from torch import Tensor

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList

from ..backbones.tower_context import TextFeedback
from ..decode_heads.training_free_head import TrainingFreeHead
from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.class_maps import ClassMaps, SlideLogits
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['TrainingFreeSegmentor']


@MODELS.register_module()
class TrainingFreeSegmentor(OpenVocabEncoderDecoder):
    """Open-vocabulary encoder-decoder with training-free post-processing.

    Args:
        decode_head (dict): A :class:`TrainingFreeHead` config.
        **kwargs: :class:`OpenVocabEncoderDecoder` arguments; ``test_cfg``
            takes mmseg's ``mode``/``crop_size``/``stride`` and
            ``crop_batch_size`` (windows per forward), ``return_logits``
            (store the class probabilities as ``seg_logits``),
            ``inference_dtype`` (``'fp32'``, ``'bf16'``, ``'fp16'`` on
            CUDA), ``precision_mode`` (``'cast'``: weights cast once, default;
            ``'autocast'``: float32 towers under autocast) and
            ``cast_text_encoder`` (cast the text tower too; default False).
    """

    #: Weights cast once unless ``precision_mode='autocast'``.
    DEFAULT_PRECISION_MODE = 'cast'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.decode_head, TrainingFreeHead):
            raise TypeError(
                f'TrainingFreeSegmentor needs a TrainingFreeHead, got '
                f'{type(self.decode_head).__name__}.')
        if hasattr(self.backbone, 'text_feedback'):
            # modes scoring against the vocabulary inside the backbone
            # (ResCLIP's semantic feedback, backbones/tower_context.py)
            self.backbone.text_feedback = self.text_feedback

    @staticmethod
    def store_prediction(sample, out, return_probs: bool) -> None:
        """Sets ``pred_sem_seg`` (and ``seg_logits`` when ``out`` is (labels, probs))."""
        fields = {}
        if return_probs:
            out, probs = out
            fields['seg_logits'] = PixelData(data=probs)
        fields['pred_sem_seg'] = PixelData(data=out)
        sample.set_data(fields)

    def cast_modules(self) -> tuple:
        """The towers only: the training-free heads' few parameters (the
        logit scale) stay float32."""
        return tuple(m for m in super().cast_modules() if m is not self.decode_head)

    def text_feedback(self) -> TextFeedback:
        """The current vocabulary's name embeddings and the head's scale."""
        return TextFeedback(self.class_embeddings().embeds,
                            self.decode_head.logit_scale)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        raise NotImplementedError(
            'TrainingFreeSegmentor is not trained; run tools/test.py.')

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        batch_img_metas = self.batch_img_metas(inputs, data_samples)
        class_embeds = self.class_embeddings()
        sims = self.chunked_inference(inputs, batch_img_metas, class_embeds)
        if sims is None:
            sims = self.inference(inputs, batch_img_metas, class_embeds)
        return self.postprocess_result(sims, data_samples, inputs,
                                       class_embeds)

    def tta_unsupported_reason(self) -> Optional[str]:
        """See :meth:`OpenVocabEncoderDecoder.tta_unsupported_reason`: the
        labels are the argmax of the stored class probabilities unless the
        head's probability threshold, area filter or mask refinement decides
        them (e.g. the VOC / Context-60 protocols' background rule)."""
        head = self.decode_head
        rules = [f'prob_thd={head.prob_thd}' if head.prob_thd > 0 else '',
                 f'area_thd={head.area_thd}' if head.area_thd is not None else '',
                 'mask_refinement' if head.mask_refinement is not None else '']
        rules = [r for r in rules if r]
        if rules:
            return (f'its labels follow rules of its own ({", ".join(rules)}), not the argmax '
                    f'of averaged class scores that SegTTAModel takes')
        return None

    def postprocess_result(self,
                           seg_logits: Union[Tensor, SlideLogits],
                           data_samples: OptSampleList = None,
                           inputs: Optional[Tensor] = None,
                           class_embeds: Optional[ClassEmbeddings] = None
                           ) -> SampleList:
        """Labels at the original size from window-averaged similarities.

        Args:
            seg_logits (Tensor | SlideLogits): (B, num_names, H, W) name
                similarities at the network input size, dense or as window
                similarities (:meth:`chunked_inference`).
            data_samples (list, optional): Samples with ``ori_shape``; None
                keeps the input size.
            inputs (Tensor, optional): The network input (PAMR guidance).
            class_embeds (ClassEmbeddings, optional): The vocabulary's
                embeddings (computed if None).
        """
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        head = self.decode_head
        return_probs = bool(self.test_cfg.get('return_logits', False))
        only_prediction = data_samples is None
        maps = self.image_maps(seg_logits)
        if only_prediction:
            data_samples = [SegDataSample() for _ in range(len(maps))]
        for i, sims in enumerate(maps):
            image = None if inputs is None else inputs[i]
            if only_prediction:
                size = sims.hw
            else:
                meta = data_samples[i].metainfo
                sims = self.undo_padding_and_flip(sims, meta)
                if image is not None:
                    image = self.undo_padding_and_flip(
                        ClassMaps.from_tensor(image), meta).dense()
                size = meta['ori_shape'][:2]
            out = head.predict_labels(
                sims, class_embeds, size, image=image,
                return_probs=return_probs,
                img_meta=None if only_prediction else meta)
            self.store_prediction(data_samples[i], out, return_probs)
        return data_samples
