"""CAT-Seg's image tower: CLIP at its own input size, Q/V fine-tuning.

CAT-Seg (Cho et al., CVPR 2024, Sec. 3.4 "Fine-tuning CLIP") fine-tunes the
query and value projections of every attention layer of the CLIP image
encoder (:func:`~mmovss.models.utils.trainable_params.restrict_in_proj_grad`)
and feeds it images resized to CLIP's resolution whatever the crop size.
"""
from typing import Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.trainable_params import QKV_PARTS, restrict_in_proj_grad
from .clip_vit import OpenCLIPViT

__all__ = ['CATSegCLIPViT']


@MODELS.register_module()
class CATSegCLIPViT(OpenCLIPViT):
    """:class:`OpenCLIPViT` with CAT-Seg's input size and Q/V fine-tuning.

    Args:
        input_size (tuple[int, int], optional): Images are resized
            (bilinear) to this size before the tower, as CAT-Seg feeds CLIP
            its own resolution (384 for ViT-B/16, 336 for ViT-L/14: a 24x24
            grid) whatever the crop size. None: no resizing.
        attn_parts (Sequence[str]): Which of Q, K, V of the trainable fused
            attention projections learn (``('q', 'v')`` in CAT-Seg).
        **kwargs: :class:`OpenCLIPViT` arguments (``unfrozen`` selects the
            trainable parameters, e.g.
            ``('transformer.resblocks.*.attn.in_proj_weight',)``).
    """

    def __init__(self,
                 input_size: Optional[Tuple[int, int]] = None,
                 attn_parts: Sequence[str] = QKV_PARTS,
                 **kwargs):
        super().__init__(**kwargs)
        if input_size is not None:
            input_size = tuple(int(s) for s in input_size)
            if len(input_size) != 2 or min(input_size) < 1:
                raise ValueError(f'CATSegCLIPViT: input_size={input_size}; '
                                 f'use (H, W), e.g. (384, 384).')
        self.input_size = input_size
        self.attn_parts = tuple(attn_parts)
        restrict_in_proj_grad(self.visual, self.attn_parts)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        if self.input_size is not None and \
                tuple(inputs.shape[2:]) != self.input_size:
            inputs = F.interpolate(inputs, size=self.input_size,
                                   mode='bilinear', align_corners=False)
        return super().forward(inputs)
