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
resized to the original size and only then passed through the sigmoid
(shared with SAN: :class:`MaskClassificationEncoderDecoder`).
"""
from mmseg.registry import MODELS

from .mask_classification_encoder_decoder import MaskClassificationEncoderDecoder

__all__ = ['FCCLIPEncoderDecoder']


@MODELS.register_module()
class FCCLIPEncoderDecoder(MaskClassificationEncoderDecoder):
    """:class:`MaskClassificationEncoderDecoder` binding the CLIP head for FC-CLIP.

    Args:
        *args, **kwargs: :class:`OpenVocabEncoderDecoder` arguments; the
            head is an ``FCCLIPHead`` (``mask_upsample='original'``: the
            official final resize order, see the base class).

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
