"""Necks, registered into mmseg.registry.MODELS on import."""
from .mask_pooling import MaskPooling
from .ms_deform_attn import (
    MSDeformAttn,
    bilinear_sample_bags,
    grid_sample_deformable_attention,
    multi_scale_deformable_attention,
)
from .msdeform_pixel_decoder import MSDeformAttnPixelDecoder

__all__ = [
    'MSDeformAttn', 'MSDeformAttnPixelDecoder', 'MaskPooling', 'bilinear_sample_bags',
    'grid_sample_deformable_attention', 'multi_scale_deformable_attention'
]
