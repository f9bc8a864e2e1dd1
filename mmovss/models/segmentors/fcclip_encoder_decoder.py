"""FC-CLIP's segmentor: one frozen CLIP shared by the backbone and the head.

The official FC-CLIP (Yu et al., NeurIPS 2023; ``fcclip/fcclip.py``,
``FCCLIP.forward``) mask-pools the last ConvNeXt stage and only then applies
the CLIP head (``trunk.head`` + ``visual.head``) to each pooled vector. Those
head weights belong to the frozen backbone, so this segmentor hands the
backbone's ``project_pooled`` to the head (no weight is duplicated); with
the head's default ``ov_pooling='embeddings'`` it is exactly
:class:`OpenVocabEncoderDecoder`.

With the head's ``mask_upsample='original'`` it also reproduces the official
evaluation with ``PANOPTIC_ON`` (``sem_seg_postprocess_before_inference``):
the mask logits are upsampled to the padded input, cropped to the image,
resized to the original size and only then passed through the sigmoid.
"""
import torch
import torch.nn.functional as F

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList

from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['FCCLIPEncoderDecoder']


@MODELS.register_module()
class FCCLIPEncoderDecoder(OpenVocabEncoderDecoder):
    """:class:`OpenVocabEncoderDecoder` binding the CLIP head for FC-CLIP.

    Args:
        *args, **kwargs: :class:`OpenVocabEncoderDecoder` arguments; the
            head is an ``FCCLIPHead``.

    Raises:
        ValueError: ``ov_pooling='features'`` without a backbone that
            returns the last stage map (``dense_output='features'``) and has
            ``project_pooled``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        head = self.decode_head
        if getattr(head, 'ov_pooling', 'embeddings') != 'features':
            return
        if getattr(self.backbone, 'dense_output', None) != 'features' or \
                not hasattr(self.backbone, 'project_pooled'):
            raise ValueError(
                "FCCLIPHead(ov_pooling='features') pools the last stage map: use an "
                "OpenCLIPConvNeXt backbone with dense_output='features' (got "
                f'{type(self.backbone).__name__} with dense_output='
                f"{getattr(self.backbone, 'dense_output', None)!r}).")
        head.set_pool_projection(self.backbone.project_pooled)

    def predict(self, inputs: torch.Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """mmseg's ``predict``; with ``mask_upsample='original'`` (whole-image
        inference), the official ``FCCLIP.forward`` with
        ``sem_seg_postprocess_before_inference``: per image, mask logits
        upsampled to the padded input, cropped (``sem_seg_postprocess``),
        resized to ``ori_shape``, then ``semantic_inference``."""
        head = self.decode_head
        if getattr(head, 'mask_upsample', None) != 'original' or data_samples is None:
            return super().predict(inputs, data_samples)
        if self._test_mode() != 'whole':
            raise ValueError("FCCLIPHead(mask_upsample='original') is whole-image inference; "
                             "set test_cfg.mode='whole' or use mask_upsample='logits'.")
        feats = self.extract_feat(inputs)
        masks, cls = head.final_sets(feats, self.class_embeddings())
        masks = F.interpolate(masks, size=inputs.shape[-2:], mode='bilinear',
                              align_corners=False)
        probs = cls.softmax(dim=-1)[..., :-1]
        return_logits = bool(self.test_cfg.get('return_logits', False))
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            if meta.get('flip', False):
                raise NotImplementedError(
                    "mask_upsample='original' does not undo flips (the official evaluation "
                    "has no flip); use mask_upsample='logits' with flip augmentation.")
            left, right, top, bottom = [int(x) for x in meta.get(
                'img_padding_size', meta.get('padding_size', [0, 0, 0, 0]))]
            m = masks[i:i + 1, :, top:masks.shape[-2] - bottom, left:masks.shape[-1] - right]
            m = F.interpolate(m, size=tuple(meta['ori_shape'][:2]), mode='bilinear',
                              align_corners=False)[0]
            scores = torch.einsum('qc,qhw->chw', probs[i], m.sigmoid())
            fields = {'pred_sem_seg': PixelData(data=scores.argmax(dim=0, keepdim=True))}
            if return_logits:
                fields['seg_logits'] = PixelData(data=scores)
            sample.set_data(fields)
        return data_samples
