"""Hooks, registered into ``mmseg.registry.HOOKS`` on import."""
from .dataset_vocabulary_hook import DatasetVocabularyHook

__all__ = ['DatasetVocabularyHook']
