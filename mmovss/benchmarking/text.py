"""The text-encoding cost of a vocabulary, separately from the image cost."""
import statistics
from typing import Dict

import torch

from .errors import BenchmarkError
from .timing import timed_runs


def text_encoders(model) -> list:
    """The text encoders of a model (modules with an embedding cache)."""
    return [m for m in model.modules()
            if hasattr(m, 'embed_names') and hasattr(m, 'clear_memory_cache')]


def measure_text(model, cache_dir: str, device, autocast) -> Dict[str, float]:
    """Time of building the class embeddings, cold and warm.

    Args:
        model: The segmentor (vocabulary set).
        cache_dir: An empty directory used as the on-disk cache.
        device: Model device (for synchronisation).
        autocast: Context-manager factory of the inference precision.

    Returns:
        dict: ``cold_s`` (empty caches; ``cold_cpu_s`` its CPU time),
        ``warm_disk_s`` (memory cache cleared, disk cache filled) and
        ``warm_s`` (memory cache; median of 5 calls), plus ``prompts``
        (texts encoded cold) and ``templates``.
    """
    from mmovss.models.text_encoders.embedding_cache import TextEmbeddingDiskCache
    encoders = text_encoders(model)
    if not encoders:
        raise BenchmarkError(f'{type(model).__name__} has no text encoder '
                             f'with an embedding cache.')
    for encoder in encoders:
        encoder.disk_cache = TextEmbeddingDiskCache(cache_dir)
        encoder.clear_memory_cache()

    def embed():
        with torch.no_grad(), autocast():
            return model.class_embeddings()

    cpu = []
    cold = timed_runs(embed, 1, 0, device, cpu)[0]
    for encoder in encoders:
        encoder.clear_memory_cache()
    warm_disk = timed_runs(embed, 1, 0, device)[0]
    warm = statistics.median(timed_runs(embed, 5, 0, device))
    vocab = model.vocabulary
    templates = len(getattr(encoders[0], 'templates', ()) or ())
    return dict(cold_s=cold, cold_cpu_s=cpu[0], warm_disk_s=warm_disk,
                warm_s=warm, prompts=vocab.num_names * templates,
                templates=templates)
