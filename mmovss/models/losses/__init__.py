"""Registered into mmseg.registry.MODELS on import."""
from .mask_classification_loss import MaskClassificationLoss  # noqa: F401,E402
