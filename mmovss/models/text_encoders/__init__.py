"""CLIP text towers, registered into mmseg.registry.MODELS on import."""
from .catseg_text_encoder import CATSegTextEncoder, TemplateClassEmbeddings, per_template_embeds
from .class_embeddings import SYNONYM_REDUCTIONS, ClassEmbeddings
from .embedding_cache import TextEmbeddingDiskCache
from .lseg_text_encoder import LSEG_TEXT_PRECISIONS, LSegTextEncoder
from .open_clip_text_encoder import CLIPTextTower, OpenCLIPTextEncoder

__all__ = [
    'CATSegTextEncoder', 'CLIPTextTower', 'ClassEmbeddings', 'LSEG_TEXT_PRECISIONS',
    'LSegTextEncoder',
    'OpenCLIPTextEncoder', 'SYNONYM_REDUCTIONS', 'TemplateClassEmbeddings',
    'TextEmbeddingDiskCache', 'per_template_embeds'
]
