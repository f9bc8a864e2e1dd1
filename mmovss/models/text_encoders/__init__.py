"""Registered into mmseg.registry.MODELS on import."""
from .class_embeddings import SYNONYM_REDUCTIONS, ClassEmbeddings
from .embedding_cache import TextEmbeddingDiskCache
from .open_clip_text_encoder import CLIPTextTower, OpenCLIPTextEncoder

__all__ = ['ClassEmbeddings', 'SYNONYM_REDUCTIONS', 'TextEmbeddingDiskCache',
           'CLIPTextTower', 'OpenCLIPTextEncoder']
