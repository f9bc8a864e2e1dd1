"""Registered into mmseg.registry.MODELS on import."""
from .clip_convnext import OpenCLIPConvNeXt
from .clip_vit import (LAST_BLOCK_MODES, OpenCLIPViT,
                       register_last_block_mode)

__all__ = ['OpenCLIPViT', 'OpenCLIPConvNeXt', 'LAST_BLOCK_MODES',
           'register_last_block_mode']
from .training_free_vit import TrainingFreeCLIPViT  # noqa: F401,E402
from .proxyclip_vit import ProxyCLIPViT  # noqa: F401,E402
from .san_clip_vit import SANCLIPViT  # noqa: F401,E402
