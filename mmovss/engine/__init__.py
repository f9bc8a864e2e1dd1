"""Runner extensions, registered into mmseg's ``HOOKS`` and MMEngine's
``MODEL_WRAPPERS``."""
from .hooks import DatasetVocabularyHook
from .model_wrappers import DistributedTestWrapper, unwrap_segmentor

__all__ = ['DatasetVocabularyHook', 'DistributedTestWrapper', 'unwrap_segmentor']
