"""Registered into mmseg.registry.MODELS on import."""
from .clip_cosine_head import CLIPCosineHead
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['OpenVocabDecodeHead', 'CLIPCosineHead']
from .dense_refine_head import DenseEmbeddingRefineHead  # noqa: F401,E402
from .training_free_head import TrainingFreeHead  # noqa: F401,E402
from .lseg_head import LSegHead  # noqa: F401,E402
from .catseg_clip import CATSegCLIPViT, CATSegTextEncoder  # noqa: F401,E402
from .catseg_head import CATSegHead  # noqa: F401,E402
from .san_head import SANHead  # noqa: F401,E402
from .fcclip_head import FCCLIPHead  # noqa: F401,E402
from .ovseg_region_clip import RegionCLIPClassifier  # noqa: F401,E402
from .zegformer_head import ZegFormerHead  # noqa: F401,E402
from .ovseg_head import OVSegHead  # noqa: F401,E402
from .openseg_head import OpenSegHead  # noqa: F401,E402
from .sam_clip_mask_generator import SAMMaskGenerator  # noqa: F401,E402
from .sam_clip_head import SAMCLIPHead  # noqa: F401,E402
