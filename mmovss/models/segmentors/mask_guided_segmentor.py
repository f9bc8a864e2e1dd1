"""Training-free segmentor whose backbone sees the class-agnostic masks.

:class:`~mmovss.models.mask_generators.MaskVoteRefinement` uses the masks of
a mask generator only after scoring (a vote). Methods such as CorrCLIP
(:class:`~mmovss.models.backbones.CorrCLIPViT`) also use them *inside* the
backbone (attention scope, mask class tokens). :class:`MaskGuidedSegmentor`
computes each image's region map once per prediction with the head's
``mask_refinement`` (its generator and cache), resizes it to the network
input with nearest-neighbour interpolation (as CorrCLIP's
``CorrCLIPSegmentation.predict`` does with ``F.interpolate(...,
mode='nearest')``) and hands every batch of sliding windows its crops of
that map through the backbone's ``crop_regions`` attribute before the
backbone runs.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS
from mmseg.utils import OptSampleList, SampleList

from .training_free_segmentor import TrainingFreeSegmentor

__all__ = ['MaskGuidedSegmentor']


@MODELS.register_module()
class MaskGuidedSegmentor(TrainingFreeSegmentor):
    """:class:`TrainingFreeSegmentor` feeding region maps to the backbone.

    The backbone must have a ``crop_regions`` attribute (e.g.
    :class:`~mmovss.models.backbones.CorrCLIPViT`) and the head a
    ``mask_refinement`` (its generator gives the masks; its vote, e.g.
    CorrCLIP's majority vote, runs after the labels as usual).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not hasattr(self.backbone, 'crop_regions'):
            raise TypeError(
                f'MaskGuidedSegmentor needs a backbone that reads masks '
                f'(`crop_regions`, e.g. CorrCLIPViT); got '
                f'{type(self.backbone).__name__}. Use TrainingFreeSegmentor '
                f'with decode_head.mask_refinement for a vote only.')
        if self.decode_head.mask_refinement is None:
            raise ValueError(
                'MaskGuidedSegmentor takes its masks from '
                'decode_head.mask_refinement; set it, e.g. '
                "dict(type='MaskVoteRefinement', mode='majority', generator="
                "dict(type='FileMaskGenerator', mask_dir='data/masks')).")
        self._input_regions: Optional[Tensor] = None

    def input_regions(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """(B, H, W) region ids of each image at the network input size.

        Computed at the original size (``ori_shape``) by the head's mask
        refinement and resized with nearest-neighbour interpolation; -1
        marks uncovered pixels.
        """
        refinement = self.decode_head.mask_refinement
        maps = []
        for image, meta in zip(inputs, batch_img_metas):
            size = meta.get('ori_shape', inputs.shape[2:])[:2]
            regions = refinement.region_map(size, image, meta)
            maps.append(F.interpolate(
                regions[None, None].float(), size=tuple(inputs.shape[2:]),
                mode='nearest')[0, 0].long().to(inputs.device))
        return torch.stack(maps)

    def _crop_batches(self, inputs: Tensor, batch_img_metas: List[dict]):
        num_windows, batches = super()._crop_batches(inputs, batch_img_metas)
        regions = self._input_regions

        def with_regions():
            for chunk, crops, metas in batches:
                self.backbone.crop_regions = None if regions is None else \
                    torch.stack([regions[b, y1:y2, x1:x2]
                                 for b, (y1, y2, x1, x2) in chunk])
                yield chunk, crops, metas

        return num_windows, with_regions()

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        metas = self.batch_img_metas(inputs, data_samples)
        self._input_regions = self.input_regions(inputs, metas)
        # 'whole' mode encodes the full input
        self.backbone.crop_regions = self._input_regions
        try:
            return super().predict(inputs, data_samples)
        finally:
            self._input_regions = None
            self.backbone.crop_regions = None

    def slide_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                        class_embeds=None) -> Tensor:
        """As the parent's, with region maps (computed if not yet)."""
        if self._input_regions is None:
            self._input_regions = self.input_regions(inputs, batch_img_metas)
            try:
                return super().slide_inference(inputs, batch_img_metas,
                                               class_embeds)
            finally:
                self._input_regions = None
                self.backbone.crop_regions = None
        return super().slide_inference(inputs, batch_img_metas, class_embeds)
