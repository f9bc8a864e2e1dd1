"""Open-vocabulary encoder-decoder whose head also sees the input image.

Two-stage methods classify mask proposals by running CLIP on the masked
image regions (ZegFormer, OVSeg, SAM + CLIP), so their heads need the image
itself besides the backbone features. :class:`TwoStageEncoderDecoder`
appends it, in pixel values, to the feature tuple; everything else (the
vocabulary, slide inference, chunked resizing) is
:class:`OpenVocabEncoderDecoder`'s. The head's region classifiers
(:class:`~mmovss.models.utils.RegionCLIPClassifier`) run their crop
forwards under ``test_cfg.inference_dtype`` like the towers: on the cast
path (``precision_mode='cast'``, the default of the two-stage heads, which
stay float32, beside a backbone checked in bf16) their CLIP image towers are
cast once with the backbone, otherwise they run under autocast.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.mixed_precision import check_inference_dtype
from ..utils.region_clip_classifier import RegionCLIPClassifier
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['TwoStageEncoderDecoder']


@MODELS.register_module()
class TwoStageEncoderDecoder(OpenVocabEncoderDecoder):
    """:class:`OpenVocabEncoderDecoder` that hands the image to its head.

    :meth:`extract_feat` returns the backbone (and neck) features followed by
    the input image in pixel values: (B, 3, H, W) float, RGB when the data
    preprocessor converts BGR to RGB, in [0, 255] - the data preprocessor's
    normalisation undone with its own ``mean``/``std``, so the head may
    normalise it however its CLIP expects. Padded pixels hold the mean
    colour. Heads take ``inputs[-1]`` as the image and ``inputs[:-1]`` as the
    features. Arguments are :class:`OpenVocabEncoderDecoder`'s; auxiliary
    heads are not supported (they would receive the image too).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.with_auxiliary_head:
            raise ValueError('TwoStageEncoderDecoder does not support '
                             'auxiliary heads; remove `auxiliary_head`.')

    def pixel_values(self, inputs: Tensor) -> Tensor:
        """Undoes the data preprocessor's normalisation (pixel values)."""
        pre = self.data_preprocessor
        if getattr(pre, '_enable_normalize', False):
            mean = pre.mean.to(inputs)
            std = pre.std.to(inputs)
            return inputs * std + mean
        return inputs

    def region_classifiers(self) -> Tuple[RegionCLIPClassifier, ...]:
        """The head's region classifiers."""
        return tuple(m for m in self.decode_head.modules()
                     if isinstance(m, RegionCLIPClassifier))

    def cast_modules(self) -> tuple:
        """:meth:`OpenVocabEncoderDecoder.cast_modules` and the CLIP image
        towers of the head's region classifiers."""
        return super().cast_modules() + tuple(
            rc.clip for rc in self.region_classifiers())

    def share_inference_dtype(self) -> None:
        """Hands ``test_cfg.inference_dtype`` and whether the towers were
        cast to the head's region classifiers (their CLIP crop forwards;
        used in inference only)."""
        dtype = check_inference_dtype(self.test_cfg.get('inference_dtype'))
        mode = 'cast' if self._cast_path() else 'autocast'
        for module in self.region_classifiers():
            module.inference_dtype = dtype
            module.precision_mode = mode

    def feature_widths(self) -> Optional[tuple]:
        """The backbone's, then the image's 3 channels (:meth:`extract_feat`)."""
        widths = super().feature_widths()
        return None if widths is None else tuple(widths) + (3, )

    def extract_feat(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """Backbone (+ neck) features, then the image in pixel values."""
        feats = super().extract_feat(inputs)
        self.share_inference_dtype()
        with torch.no_grad():
            pixels = self.pixel_values(inputs.detach())
        return tuple(feats) + (pixels, )
