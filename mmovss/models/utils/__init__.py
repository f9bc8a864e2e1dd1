"""Registered into mmseg.registry.MODELS on import."""
from .open_clip_weights import (PretrainedWeightsUnavailable, build_open_clip,
                                file_sha256, load_clip_state_dict,
                                module_fingerprint, resolve_pretrained_tag)

__all__ = ['PretrainedWeightsUnavailable', 'build_open_clip', 'file_sha256',
           'load_clip_state_dict', 'module_fingerprint',
           'resolve_pretrained_tag']
from .pamr import PAMR  # noqa: F401,E402
from .hungarian import HungarianMaskMatcher  # noqa: F401,E402
from .mask_classification import (geometric_ensemble,  # noqa: F401,E402
                                  open_vocab_class_logits, seen_class_mask,
                                  semantic_inference)
from .mixed_precision import (INFERENCE_DTYPES,  # noqa: F401,E402
                              check_inference_dtype, float32_region,
                              inference_autocast, to_float32)
from .class_maps import ClassMaps, SlideLogits  # noqa: F401,E402
