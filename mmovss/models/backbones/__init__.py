"""CLIP image towers, registered into mmseg.registry.MODELS on import."""
from .catseg_clip_vit import CATSegCLIPViT
from .clip_convnext import OpenCLIPConvNeXt
from .clip_vit import LAST_BLOCK_MODES, OpenCLIPViT, register_last_block_mode
from .proxyclip_vit import ProxyCLIPViT
from .san_clip_vit import SANCLIPViT
from .training_free_vit import TrainingFreeCLIPViT

__all__ = [
    'CATSegCLIPViT', 'LAST_BLOCK_MODES', 'OpenCLIPConvNeXt', 'OpenCLIPViT',
    'ProxyCLIPViT', 'SANCLIPViT', 'TrainingFreeCLIPViT',
    'register_last_block_mode'
]
