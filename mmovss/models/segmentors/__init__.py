"""Segmentors, registered into mmseg.registry.MODELS on import."""
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder
from .openseg_encoder_decoder import OpenSegEncoderDecoder
from .training_free_segmentor import TrainingFreeSegmentor
from .two_stage_encoder_decoder import TwoStageEncoderDecoder
from .two_stage_mask_prompt_tuner import MaskPromptTuner

__all__ = [
    'MaskPromptTuner', 'OpenSegEncoderDecoder', 'OpenVocabEncoderDecoder',
    'TrainingFreeSegmentor', 'TwoStageEncoderDecoder'
]
