"""CLIP image towers, registered into mmseg.registry.MODELS on import."""
from .catseg_clip_vit import CATSegCLIPViT
from .clip_convnext import OpenCLIPConvNeXt
from .clip_vit import LAST_BLOCK_MODES, OpenCLIPViT, register_last_block_mode
from .corrclip_vit import CorrCLIPViT
from .d2_resnet import D2ResNet, FrozenBatchNorm2d
from .open_clip_timm_vit import TIMM_LAST_BLOCK_MODES, OpenCLIPTimmViT
from .proxyclip_vit import ProxyCLIPViT
from .san_clip_vit import SANCLIPViT
from .timm_vit import TimmViT
from .training_free_vit import TrainingFreeCLIPViT
from .trident_vit import TridentCLIPViT

__all__ = [
    'CATSegCLIPViT', 'CorrCLIPViT', 'D2ResNet', 'FrozenBatchNorm2d', 'LAST_BLOCK_MODES',
    'OpenCLIPConvNeXt', 'OpenCLIPTimmViT', 'OpenCLIPViT', 'TIMM_LAST_BLOCK_MODES',
    'ProxyCLIPViT', 'SANCLIPViT', 'TimmViT', 'TrainingFreeCLIPViT', 'TridentCLIPViT',
    'register_last_block_mode'
]
