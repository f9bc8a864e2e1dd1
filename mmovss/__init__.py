"""mmovss: open-vocabulary semantic segmentation as an MMSegmentation plugin.

Importing this package first applies :mod:`mmovss.compat` (so that mmseg
imports on mmcv-lite and current PyTorch), then registers every module of the
toolbox into mmseg's registries (``mmseg.registry.MODELS``, ``DATASETS``,
``TRANSFORMS``, ``METRICS``, ...). Configs load it with
``custom_imports = dict(imports=['mmovss'], allow_failed_imports=False)``.
"""
# `compat` sorts first and must stay first: it patches mmcv-lite before any
# mmseg module is imported by the subpackages that follow (they register
# their modules into mmseg's registries on import).
from . import compat  # noqa: F401  # isort: skip
from . import datasets, engine, evaluation, models, visualization, vocab  # noqa: F401
from .version import __version__

__all__ = ['__version__']
