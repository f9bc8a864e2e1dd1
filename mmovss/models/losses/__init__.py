"""Registered into mmseg.registry.MODELS on import."""
from .mask_classification_loss import MaskClassificationLoss  # noqa: F401,E402
from .openseg_mask_loss import ClassAgnosticDiceLoss  # noqa: F401,E402
from .grounding_loss import RegionWordGroundingLoss  # noqa: F401,E402
