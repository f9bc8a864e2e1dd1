"""Models: backbones, text encoders, necks, decode heads, segmentors."""
from . import (
               backbones,
               decode_heads,
               losses,
               mask_generators,
               necks,
               segmentors,
               text_encoders,
               utils,
)

__all__ = [
    'backbones', 'decode_heads', 'losses', 'mask_generators', 'necks', 'segmentors',
    'text_encoders', 'utils'
]
