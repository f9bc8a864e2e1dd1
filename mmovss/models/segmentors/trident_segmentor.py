"""Trident's segmentor: one whole-image forward, logits from SAM's grid.

Trident (Shi et al., ICCV 2025; github.com/YuHengsss/Trident,
``trident.py``, ``Trident.get_trident_seg`` / ``predict``) windows the image
inside its backbone (:class:`~mmovss.models.backbones.TridentCLIPViT`) and
aggregates the windows with SAM, which sees the original image. This
segmentor reads that image (``img_path`` of the sample, decoded as the
reference's ``cv2.imread``; without a readable file: the network input
de-normalised and resized to the original size), runs the backbone once per
image and resizes the cosine similarities from SAM's grid directly to the
original size (bilinear, ``align_corners=False``) before the shared
post-processing of :class:`~mmovss.models.decode_heads.TrainingFreeHead`
(softmax at the logit scale, synonym max, ``prob_thd``; optional PAMR and
mask refinement).
"""
import os.path as osp
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList

from .training_free_segmentor import TrainingFreeSegmentor

__all__ = ['TridentSegmentor']


@MODELS.register_module()
class TridentSegmentor(TrainingFreeSegmentor):
    """:class:`TrainingFreeSegmentor` for Trident's whole-image backbone."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not hasattr(self.backbone, 'sam_images'):
            raise TypeError(
                f'TridentSegmentor needs a backbone that takes the original '
                f'image (`sam_images`, TridentCLIPViT); got '
                f'{type(self.backbone).__name__}.')

    def original_rgb(self, image: Tensor, meta: dict) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the original image."""
        path = meta.get('img_path')
        size = tuple(meta.get('ori_shape', image.shape[1:])[:2])
        if path and osp.isfile(path):
            import mmcv
            rgb = mmcv.imread(path, channel_order='rgb')
            if rgb is not None and tuple(rgb.shape[:2]) == size:
                return np.ascontiguousarray(rgb)
        mean = torch.tensor(self.data_preprocessor.mean).view(3, 1, 1)
        std = torch.tensor(self.data_preprocessor.std).view(3, 1, 1)
        rgb = image.float().cpu() * std + mean
        rgb = F.interpolate(rgb[None], size=size, mode='bilinear',
                            align_corners=False)[0]
        return rgb.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        metas = self.batch_img_metas(inputs, data_samples)
        class_embeds = self.class_embeddings()
        head = self.decode_head
        return_probs = bool(self.test_cfg.get('return_logits', False))
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(len(inputs))]
        for i, meta in enumerate(metas):
            sims = self.image_similarities(inputs[i:i + 1], meta,
                                           class_embeds)
            size = tuple(meta['ori_shape'][:2])
            out = head.predict_labels(sims, class_embeds, size,
                                      image=inputs[i],
                                      return_probs=return_probs,
                                      img_meta=meta)
            self.store_prediction(data_samples[i], out, return_probs)
        return data_samples

    def image_similarities(self, inputs: Tensor, meta: dict,
                           class_embeds=None) -> Tensor:
        """(num_names, H, W) similarities at the original size."""
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        self.backbone.sam_images = [self.original_rgb(inputs[0], meta)]
        try:
            feats = self.extract_feat(inputs)
        finally:
            self.backbone.sam_images = None
        sims = self.decode_head.name_similarities(feats, class_embeds)
        return F.interpolate(sims, size=tuple(meta['ori_shape'][:2]),
                             mode='bilinear', align_corners=False)[0]

    def slide_inference(self, inputs, batch_img_metas, class_embeds=None):
        """Trident windows inside the backbone: the whole-image similarities
        (at the original size), one image at a time."""
        return torch.stack([
            self.image_similarities(inputs[i:i + 1], meta, class_embeds)
            for i, meta in enumerate(batch_img_metas)])

    def inference(self, inputs, batch_img_metas, class_embeds=None):
        return self.slide_inference(inputs, batch_img_metas, class_embeds)

    def chunked_inference(self, *args, **kwargs) -> Optional[Tensor]:
        return None
