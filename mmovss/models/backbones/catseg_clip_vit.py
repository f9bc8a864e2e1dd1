"""CAT-Seg's image tower: CLIP at its own input size, Q/V fine-tuning.

CAT-Seg (Cho et al., CVPR 2024, Sec. 3.4 "Fine-tuning CLIP") fine-tunes the
query and value projections of every attention layer of the CLIP image
encoder (:func:`~mmovss.models.utils.trainable_params.restrict_in_proj_grad`)
and feeds it images resized to CLIP's resolution whatever the crop size.

The released models compute CLIP's last block in their own dense way
(``third_party/model_vpt.py``, ``ResidualAttentionBlock.forward_dense`` of
github.com/KU-CVLAB/CAT-Seg): the value path ``O(v)`` of every token plus
the *class token's* input residual, then the FFN. It is registered here as
the last-block mode ``'catseg'`` (:func:`catseg_dense_block`); the default
of the model bases stays MaskCLIP's (each token's own residual).
"""
from typing import Optional, Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.trainable_params import QKV_PARTS, restrict_in_proj_grad
from .clip_vit import OpenCLIPViT, register_last_block_mode
from .training_free_modes import merge_heads, project_v, with_residual_and_mlp

__all__ = ['CATSegCLIPViT', 'catseg_dense_block']


@register_last_block_mode('catseg')
def catseg_dense_block(block: nn.Module, x: Tensor,
                       grid_hw: Tuple[int, int]) -> Tensor:
    """CAT-Seg's dense last block: ``x' = O(v) + x_cls``; ``x' + mlp(ln_2(x'))``.

    The value path of every token (no attention between tokens), with the
    input *class token* ``x[:, :1]`` added to every token as the residual
    (``ResidualAttentionBlock.forward_dense`` of CAT-Seg's
    ``third_party/model_vpt.py``: ``v = v.transpose(1, 0) + x[:1]``), where
    MaskCLIP (``'maskclip'``) adds each token's own input.
    """
    v = project_v(block, x)
    return with_residual_and_mlp(block, x[:, :1].expand_as(x), merge_heads(block, v))


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
