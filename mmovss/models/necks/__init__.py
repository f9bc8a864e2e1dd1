"""Registered into mmseg.registry.MODELS on import."""
from .mask_pooling import MaskPooling  # noqa: F401,E402
from .msdeform_pixel_decoder import MSDeformAttnPixelDecoder  # noqa: F401,E402
from .ms_deform_attn import (MSDeformAttn,  # noqa: F401,E402
                             multi_scale_deformable_attention)
