"""Registered into mmseg.registry.MODELS (and HOOKS) on import."""
from .dataset_vocabulary_hook import DatasetVocabularyHook
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['OpenVocabEncoderDecoder', 'DatasetVocabularyHook']
from .training_free_segmentor import TrainingFreeSegmentor  # noqa: F401,E402
from .two_stage_encoder_decoder import TwoStageEncoderDecoder  # noqa: F401,E402
from .two_stage_mask_prompt_tuner import MaskPromptTuner  # noqa: F401,E402
from .openseg_encoder_decoder import OpenSegEncoderDecoder  # noqa: F401,E402
