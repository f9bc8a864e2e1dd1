"""Pieces shared by several methods (building blocks, weights, inference).

``PAMR`` and ``RegionCLIPClassifier`` are registered into
mmseg.registry.MODELS on import.
"""
from .class_maps import ClassMaps, SlideLogits
from .clip_attention import clip_block
from .hungarian import HungarianMaskMatcher, NonFiniteMatchingCost
from .mask_classification import (
                                  geometric_ensemble,
                                  open_vocab_class_logits,
                                  seen_class_mask,
                                  semantic_inference,
)
from .maskformer_decoder import FPNPixelDecoder, MaskFormerDecoder, QueryDecoder
from .mixed_precision import (
                                  INFERENCE_DTYPES,
                                  check_inference_dtype,
                                  float32_region,
                                  inference_autocast,
                                  to_float32,
)
from .open_clip_weights import (
                                  PretrainedWeightsUnavailable,
                                  build_open_clip,
                                  file_sha256,
                                  load_clip_state_dict,
                                  module_fingerprint,
                                  resolve_pretrained_tag,
                                  tag_quick_gelu,
)
from .pamr import PAMR
from .position_embedding import sine_position_embedding
from .query_decoder_layer import QueryDecoderLayer
from .region_clip_classifier import RegionCLIPClassifier, mask_boxes
from .running_max import chunked_argmax
from .trainable_params import QKV_PARTS, PretrainedTower, freeze_except, restrict_in_proj_grad

__all__ = [
    'ClassMaps', 'FPNPixelDecoder', 'HungarianMaskMatcher',
    'INFERENCE_DTYPES', 'MaskFormerDecoder', 'NonFiniteMatchingCost', 'PAMR',
    'PretrainedTower', 'PretrainedWeightsUnavailable', 'QKV_PARTS', 'QueryDecoder',
    'QueryDecoderLayer', 'RegionCLIPClassifier', 'SlideLogits',
    'build_open_clip', 'check_inference_dtype', 'chunked_argmax',
    'clip_block', 'file_sha256', 'float32_region', 'freeze_except',
    'geometric_ensemble', 'inference_autocast', 'load_clip_state_dict',
    'mask_boxes', 'module_fingerprint', 'open_vocab_class_logits',
    'resolve_pretrained_tag', 'restrict_in_proj_grad', 'seen_class_mask',
    'semantic_inference', 'sine_position_embedding', 'tag_quick_gelu',
    'to_float32'
]
