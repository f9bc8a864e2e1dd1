"""The text side handed to open-vocabulary decode heads."""
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from mmovss.vocab import Vocabulary

__all__ = ['ClassEmbeddings', 'SYNONYM_REDUCTIONS', 'reduce_names']

SYNONYM_REDUCTIONS = ('max', 'mean')


def reduce_names(values: Tensor, name_to_class: Tensor, num_classes: int,
                 reduction: str = 'max', dim: int = 1) -> Tensor:
    """Reduces per-name values to per-class values over synonyms.

    Args:
        values (Tensor): Any shape with one entry per name along ``dim``.
        name_to_class (Tensor): (N_names,) int64 class index of every name.
        num_classes (int): Number of classes of the result.
        reduction (str): ``'max'`` or ``'mean'`` over a class's names.
        dim (int): The name axis.

    Returns:
        Tensor: Same shape with ``num_classes`` entries along ``dim``.
    """
    dim = dim % values.dim()
    index = name_to_class.to(values.device)
    shape = list(values.shape)
    shape[dim] = num_classes
    if reduction == 'max':
        out = values.new_full(shape, float('-inf'))
        with warnings.catch_warnings():  # "index_reduce() is in beta"
            warnings.simplefilter('ignore', UserWarning)
            return out.index_reduce_(dim, index, values, 'amax', include_self=True)
    counts = torch.bincount(index, minlength=num_classes)
    view = [1] * values.dim()
    view[dim] = num_classes
    total = values.new_zeros(shape).index_add(dim, index, values)
    return total / counts.view(view).to(values.dtype)


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
        return reduce_names(logits, self.name_to_class, self.num_classes,
                            self.reduction, dim)

    def names_as_classes(self) -> 'ClassEmbeddings':
        """The same embeddings with every name a class of its own.

        For a caller that reduces the names itself, later than the head
        (:meth:`reduce` of the copy is the identity). Without synonyms it
        is ``self``.
        """
        if not self.has_synonyms:
            return self
        vocabulary = Vocabulary([(name,) for name in self.vocabulary.names],
                                source=f'{self.vocabulary.source} (names as classes)',
                                duplicate_synonyms='ignore', unique_names=False)
        return dataclasses.replace(
            self, vocabulary=vocabulary,
            name_to_class=torch.arange(self.num_names, device=self.name_to_class.device))
