"""Maximum and argmax over classes of maps that come a chunk at a time.

Large vocabularies are resized and post-processed a chunk of classes at a
time (:class:`~mmovss.models.segmentors.OpenVocabEncoderDecoder`'s chunked
resize, :class:`~mmovss.models.decode_heads.TrainingFreeHead`'s
post-processing); :func:`chunked_argmax` keeps the running maximum and its
class, so no map of all classes is ever needed.
"""
from typing import Iterable, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['chunked_argmax']


def chunked_argmax(chunks: Iterable[Tuple[int, Tensor]]
                   ) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(max, argmax)`` over dim 0 of maps given in consecutive chunks.

    Equal to ``torch.cat(maps).max(dim=0)``: within a chunk and across
    chunks the earlier class wins ties, as in ``argmax``.

    Args:
        chunks (Iterable[tuple[int, Tensor]]): ``(first_class, maps)`` pairs,
            ``maps`` of shape (c, ...) holding classes ``first_class`` to
            ``first_class + c - 1``, in increasing class order.

    Returns:
        tuple[Tensor, Tensor]: The (...) maximum and its int64 class index
        (None, None without chunks).
    """
    best_val = best_idx = None
    for start, maps in chunks:
        val, idx = maps.max(dim=0)
        idx = idx + start
        if best_val is None:
            best_val, best_idx = val, idx
        else:
            better = val > best_val
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, idx, best_idx)
    return best_val, best_idx
