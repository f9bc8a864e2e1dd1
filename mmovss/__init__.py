"""mmovss: open-vocabulary semantic segmentation as an MMSegmentation plugin.

Importing this package first applies :mod:`mmovss.compat` (so that mmseg
imports on mmcv-lite and current PyTorch), then registers every module of the
toolbox into mmseg's registries (``mmseg.registry.MODELS``, ``DATASETS``,
``TRANSFORMS``, ``METRICS``, ...). Configs load it with
``custom_imports = dict(imports=['mmovss'], allow_failed_imports=False)``.
"""
from . import compat  # noqa: F401  (must come before any mmseg import)
from .version import __version__

from . import datasets, evaluation, models, visualization, vocab  # noqa: F401,E402

__all__ = ['__version__']
