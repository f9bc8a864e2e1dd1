"""Which converter reads a checkpoint: recognised by its keys.

Every official-format converter module defines ``FORMAT`` (its name),
``matches(state_dict) -> bool`` (the key signature of its format) and
``convert(state_dict) -> dict`` (mmovss keys; raises
:class:`~mmovss.converters.common.ConversionError` when a key is unaccounted
for). :data:`FORMAT_MODULES` lists them; :func:`detect_format` asks each.
"""
import importlib
from typing import Dict, List, Optional

import torch

__all__ = ['FORMAT_MODULES', 'detect_format', 'format_module', 'known_formats']

FORMAT_MODULES: Dict[str, str] = {
    'san_mmseg': 'mmovss.converters.san_mmseg',
    'catseg_official': 'mmovss.converters.catseg_official',
    'fcclip_official': 'mmovss.converters.fcclip_official',
    'san_official': 'mmovss.converters.san_official',
    'zegformer_official': 'mmovss.converters.zegformer_official',
    'ovseg_official': 'mmovss.converters.ovseg_official',
    'lseg_official': 'mmovss.converters.lseg_official',
}
"""Format name -> module defining ``FORMAT``, ``matches`` and ``convert``."""


def format_module(fmt: str):
    """The converter module of a format name."""
    if fmt not in FORMAT_MODULES:
        raise KeyError(f'unknown checkpoint format {fmt!r}; known: {sorted(FORMAT_MODULES)}')
    return importlib.import_module(FORMAT_MODULES[fmt])


def known_formats() -> List[str]:
    """Format names whose converter module is importable."""
    out = []
    for fmt in FORMAT_MODULES:
        try:
            format_module(fmt)
        except ImportError:
            continue
        out.append(fmt)
    return out


def detect_format(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """The one format whose ``matches`` accepts the keys, else None."""
    hits = [fmt for fmt in known_formats() if format_module(fmt).matches(state_dict)]
    if len(hits) > 1:
        raise ValueError(f'checkpoint keys match several formats {hits}; pass the format')
    return hits[0] if hits else None
