"""Segmentors, registered into mmseg.registry.MODELS on import."""
from .catseg_encoder_decoder import CATSegEncoderDecoder
from .fcclip_encoder_decoder import FCCLIPEncoderDecoder
from .mask_classification_encoder_decoder import MaskClassificationEncoderDecoder
from .mask_guided_segmentor import MaskGuidedSegmentor
from .multi_scale_flip import MultiScaleFlipEncoderDecoder, MultiScaleFlipInference
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder
from .open_vocab_tta import OpenVocabTTAModel
from .openseg_encoder_decoder import OpenSegEncoderDecoder
from .training_free_segmentor import TrainingFreeSegmentor
from .trident_segmentor import TridentSegmentor
from .two_stage_encoder_decoder import TwoStageEncoderDecoder
from .two_stage_mask_prompt_tuner import MaskPromptTuner, merge_mask_prompts

__all__ = [
    'CATSegEncoderDecoder',
    'FCCLIPEncoderDecoder',
    'MaskClassificationEncoderDecoder',
    'MaskGuidedSegmentor', 'MaskPromptTuner', 'MultiScaleFlipEncoderDecoder',
    'MultiScaleFlipInference', 'OpenSegEncoderDecoder', 'OpenVocabEncoderDecoder',
    'OpenVocabTTAModel',
    'TrainingFreeSegmentor', 'TridentSegmentor', 'TwoStageEncoderDecoder',
    'merge_mask_prompts'
]
