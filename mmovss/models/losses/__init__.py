"""Losses, registered into mmseg.registry.MODELS on import."""
from .grounding_loss import RegionWordGroundingLoss
from .mask_classification_loss import MaskClassificationLoss
from .openseg_mask_loss import ClassAgnosticDiceLoss

__all__ = [
    'ClassAgnosticDiceLoss', 'MaskClassificationLoss',
    'RegionWordGroundingLoss'
]
