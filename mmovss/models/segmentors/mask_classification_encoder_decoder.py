"""Mask-classification segmentors with the official final resize order.

MaskFormer-style heads (SAN, FC-CLIP) predict ``Q`` mask logits and class
logits. Their official evaluation with detectron2's
``sem_seg_postprocess`` *before* inference (SAN's
``SEM_SEG_POSTPROCESS_BEFORE_INFERENCE``, FC-CLIP's ``PANOPTIC_ON``) upsamples
the mask logits to the padded input, crops them to the image, resizes them to
the ORIGINAL image size and only then applies the sigmoid and the class
product (``SAN.forward`` / ``FCCLIP.forward`` + ``semantic_inference``;
detectron2 ``modeling/postprocessing.py``, ``sem_seg_postprocess``). Our
default resizes the final class scores instead; a head selects the official
order with ``mask_upsample='original'``.
"""
import torch
import torch.nn.functional as F

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList

from ..utils.running_max import chunked_argmax
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['MaskClassificationEncoderDecoder']


@MODELS.register_module()
class MaskClassificationEncoderDecoder(OpenVocabEncoderDecoder):
    """:class:`OpenVocabEncoderDecoder` with the official final resize order.

    When the head's ``mask_upsample`` is ``'original'`` (whole-image
    inference with data samples), :meth:`predict` does, per image, as the
    official ``semantic_inference`` after ``sem_seg_postprocess``::

        m = resize(crop(resize(M, padded input)), original size)
        S_c = sum_q softmax(z_q)_c * sigmoid(m_q)

    Otherwise it is :class:`OpenVocabEncoderDecoder` (scores at the input size,
    cropped and resized by :meth:`postprocess_result`). The head must have
    ``final_sets(feats, class_embeds) -> (mask logits (B, Q, h, w), class
    logits (B, Q, C + 1))`` and a ``mask_upsample`` attribute.

    Labels are the argmax over classes taken ``test_cfg.resize_class_chunk``
    classes at a time (equal to the full argmax, ties to the earlier class);
    ``test_cfg.return_logits`` also returns the (C, H, W) scores.
    """

    def _official_resize(self) -> bool:
        return getattr(self.decode_head, 'mask_upsample', None) == 'original'

    def predict(self, inputs: torch.Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """mmseg's ``predict``; with ``mask_upsample='original'`` the official
        order (see the class docstring)."""
        if not self._official_resize() or data_samples is None:
            return super().predict(inputs, data_samples)
        head = self.decode_head
        name = type(head).__name__
        if self._test_mode() != 'whole':
            raise ValueError(f"{name}(mask_upsample='original') is whole-image inference; "
                             "set test_cfg.mode='whole' or use mask_upsample='logits'.")
        feats = self.extract_feat(inputs)
        masks, cls = head.final_sets(feats, self.class_embeddings())
        masks = F.interpolate(masks, size=inputs.shape[-2:], mode='bilinear',
                              align_corners=False)
        probs = cls.softmax(dim=-1)[..., :-1]
        return_logits = bool(self.test_cfg.get('return_logits', False))
        chunk = int(self.test_cfg.get('resize_class_chunk', 16))
        if chunk < 1:
            raise ValueError(f'test_cfg.resize_class_chunk must be >= 1, got {chunk}.')
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            if meta.get('flip', False):
                raise NotImplementedError(
                    f"{name}(mask_upsample='original') does not undo flips (the official "
                    "evaluation has no flip); use mask_upsample='logits' with flip "
                    'augmentation.')
            left, right, top, bottom = [int(x) for x in meta.get(
                'img_padding_size', meta.get('padding_size', [0, 0, 0, 0]))]
            m = masks[i:i + 1, :, top:masks.shape[-2] - bottom, left:masks.shape[-1] - right]
            ori = tuple(meta['ori_shape'][:2])
            if tuple(m.shape[-2:]) != ori:  # a resize to the same size is a copy
                m = F.interpolate(m, size=ori, mode='bilinear', align_corners=False)
            m = m[0].sigmoid()
            if return_logits:
                scores = torch.einsum('qc,qhw->chw', probs[i], m)
                pred = scores.argmax(dim=0, keepdim=True)
            else:
                pred = chunked_argmax(
                    (start, torch.einsum('qc,qhw->chw', probs[i, :, start:start + chunk], m))
                    for start in range(0, probs.shape[-1], chunk))[1][None]
            fields = {'pred_sem_seg': PixelData(data=pred)}
            if return_logits:
                fields['seg_logits'] = PixelData(data=scores)
            sample.set_data(fields)
        return data_samples
