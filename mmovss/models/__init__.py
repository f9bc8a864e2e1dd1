"""Models: backbones, text encoders, necks, decode heads, segmentors."""
from . import (backbones, decode_heads, losses, necks, segmentors,  # noqa: F401
               text_encoders, utils)
