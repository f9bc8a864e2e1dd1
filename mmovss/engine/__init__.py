"""Runner extensions, registered into mmseg's registries (``HOOKS``)."""
from .hooks import DatasetVocabularyHook

__all__ = ['DatasetVocabularyHook']
