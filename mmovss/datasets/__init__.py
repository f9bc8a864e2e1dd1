"""Registered datasets and transforms (mmseg.registry)."""
