"""Registered into mmseg.registry.MODELS on import."""
