"""The text side handed to open-vocabulary decode heads."""
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from mmovss.vocab import Vocabulary

__all__ = ['ClassEmbeddings', 'SYNONYM_REDUCTIONS']

SYNONYM_REDUCTIONS = ('max', 'mean')


@dataclass
class ClassEmbeddings:
    """L2-normalised text embeddings of every name of a vocabulary.

    Heads score image features against :attr:`embeds` (one row per *name*),
    then call :meth:`reduce` on the name axis of their logits to get one
    score per *class* (max or mean over a class's synonyms).

    Attributes:
        embeds (Tensor): (N_names, D) unit-norm embeddings, names ordered
            class by class (:attr:`Vocabulary.names`).
        name_to_class (Tensor): (N_names,) int64 class index of every name.
        vocabulary (Vocabulary): The vocabulary embedded.
        reduction (str): ``'max'`` or ``'mean'`` over synonyms.
        logit_scale (Tensor, optional): CLIP's temperature
            ``exp(logit_scale)`` (a scalar), for cosine-similarity logits.
    """
    embeds: Tensor
    name_to_class: Tensor
    vocabulary: Vocabulary
    reduction: str = 'max'
    logit_scale: Optional[Tensor] = None

    def __post_init__(self):
        if self.reduction not in SYNONYM_REDUCTIONS:
            raise ValueError(f'Synonym reduction {self.reduction!r} is not one '
                             f'of {SYNONYM_REDUCTIONS}.')
        if self.embeds.dim() != 2 or \
                self.embeds.shape[0] != self.name_to_class.numel():
            raise ValueError(
                f'ClassEmbeddings: embeds of shape {tuple(self.embeds.shape)} '
                f'do not match {self.name_to_class.numel()} names.')

    @property
    def num_classes(self) -> int:
        return self.vocabulary.num_classes

    @property
    def num_names(self) -> int:
        return self.embeds.shape[0]

    @property
    def has_synonyms(self) -> bool:
        return self.num_names != self.num_classes

    def to(self, *args, **kwargs) -> 'ClassEmbeddings':
        """Moves the tensors (``Tensor.to`` arguments)."""
        scale = None if self.logit_scale is None else \
            self.logit_scale.to(*args, **kwargs)
        return ClassEmbeddings(
            self.embeds.to(*args, **kwargs),
            self.name_to_class.to(self.embeds.to(*args, **kwargs).device),
            self.vocabulary, self.reduction, scale)

    def reduce(self, logits: Tensor, dim: int = 1) -> Tensor:
        """Reduces name logits to class logits over synonyms.

        ``s_c = max_{n in names(c)} s_n`` (``'max'``) or the mean over
        ``names(c)`` (``'mean'``).

        Args:
            logits (Tensor): Any shape with ``N_names`` entries along ``dim``.
            dim (int): The name axis.

        Returns:
            Tensor: Same shape with ``num_classes`` entries along ``dim``.
        """
        dim = dim % logits.dim()
        if logits.shape[dim] != self.num_names:
            raise ValueError(
                f'ClassEmbeddings.reduce: logits have {logits.shape[dim]} '
                f'entries on dim {dim}, expected one per name '
                f'({self.num_names}).')
        if not self.has_synonyms:
            return logits
        index = self.name_to_class.to(logits.device)
        shape = list(logits.shape)
        shape[dim] = self.num_classes
        if self.reduction == 'max':
            out = logits.new_full(shape, float('-inf'))
            with warnings.catch_warnings():  # "index_reduce() is in beta"
                warnings.simplefilter('ignore', UserWarning)
                return out.index_reduce_(dim, index, logits, 'amax',
                                         include_self=True)
        counts = torch.bincount(index, minlength=self.num_classes)
        view = [1] * logits.dim()
        view[dim] = self.num_classes
        total = logits.new_zeros(shape).index_add(dim, index, logits)
        return total / counts.view(view).to(logits.dtype)
