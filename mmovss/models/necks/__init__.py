"""Necks, registered into mmseg.registry.MODELS on import."""
from .mask_pooling import MaskPooling
from .ms_deform_attn import MSDeformAttn, multi_scale_deformable_attention
from .msdeform_pixel_decoder import MSDeformAttnPixelDecoder

__all__ = [
    'MSDeformAttn', 'MSDeformAttnPixelDecoder', 'MaskPooling',
    'multi_scale_deformable_attention'
]
