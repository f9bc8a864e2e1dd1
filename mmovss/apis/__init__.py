"""Segment your own images: the inferencer and its model names.

``OpenVocabInferencer(model)(images, vocabulary=[...])`` -> label maps,
class areas and scores, overlays with a legend. ``model`` is a config path or
a name from :func:`list_models`.
"""
from .. import package_check  # noqa: F401  (a folder named mmovss shadowing us: say so)
from .inputs import IMAGE_EXTENSIONS, UnreadableImageError, UnsegmentableImageError, collect_inputs
from .model_zoo import ALIASES, get_model_info, list_models, released_models, resolve_model
from .open_vocab_inferencer import OpenVocabInferencer, OutputWouldOverwriteInput
from .released_weights import ReleasedWeightsError, prepare_weights
from .vocabulary_text import vocabulary_from_text

__all__ = [
    'ALIASES', 'IMAGE_EXTENSIONS', 'OpenVocabInferencer',
    'OutputWouldOverwriteInput',
    'UnreadableImageError', 'UnsegmentableImageError', 'collect_inputs', 'get_model_info',
    'list_models',
    'resolve_model', 'vocabulary_from_text', 'released_models', 'ReleasedWeightsError',
    'prepare_weights'
]
