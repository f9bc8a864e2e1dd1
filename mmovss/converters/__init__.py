"""Checkpoint converters: other projects' key layouts -> mmovss's.

Each module maps every key of one released format (or refuses it with a
summary); the scripts in ``tools/model_converters/`` are thin wrappers.
"""
from .san_mmseg import convert_key, mmovss_to_mmseg, mmseg_to_mmovss

__all__ = ['convert_key', 'mmovss_to_mmseg', 'mmseg_to_mmovss']
