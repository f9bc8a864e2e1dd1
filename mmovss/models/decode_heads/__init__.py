"""Open-vocabulary decode heads, registered into mmseg.registry.MODELS."""
from .catseg_head import CATSegHead
from .clip_cosine_head import CLIPCosineHead
from .dense_refine_head import DenseEmbeddingRefineHead
from .fcclip_head import FCCLIPHead
from .lseg_head import LSegHead
from .mask_classification_head import MaskClassificationHead
from .open_vocab_head import OpenVocabDecodeHead
from .openseg_head import OpenSegHead
from .ovseg_head import OVSegHead
from .sam_clip_head import SAMCLIPHead
from .san_head import SANHead
from .training_free_head import TrainingFreeHead
from .zegformer_head import ZegFormerHead

__all__ = [
    'CATSegHead', 'CLIPCosineHead', 'DenseEmbeddingRefineHead', 'FCCLIPHead',
    'LSegHead', 'MaskClassificationHead', 'OVSegHead', 'OpenSegHead',
    'OpenVocabDecodeHead', 'SAMCLIPHead', 'SANHead',
    'TrainingFreeHead', 'ZegFormerHead'
]
