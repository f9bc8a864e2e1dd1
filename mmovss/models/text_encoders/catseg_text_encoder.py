"""CAT-Seg's text tower: per-template embeddings, Q/V fine-tuning.

The cost volume of CAT-Seg (Cho et al., CVPR 2024) has one channel per
prompt template (Eq. 1, ``C(i, n, p) = <E_v(i), E_t(n, p)>`` with unit
vectors), so this text encoder returns the embeddings of every template as
well as their ensemble; like the image tower it fine-tunes only the query
and value projections (Sec. 3.4,
:func:`~mmovss.models.utils.trainable_params.restrict_in_proj_grad`).

The released code embeds only the *first* synonym of each class name
(``CATSegPredictor.get_text_embeds`` of github.com/KU-CVLAB/CAT-Seg:
``classname.split(', ')[0]``); ``synonyms='first'`` does the same, the
default ``'all'`` embeds every synonym and reduces the logits over them.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch.nn.functional as F
from torch import Tensor

from mmovss.vocab import Vocabulary

from mmseg.registry import MODELS

from ..utils.trainable_params import QKV_PARTS, freeze_except, restrict_in_proj_grad
from .class_embeddings import ClassEmbeddings
from .open_clip_text_encoder import OpenCLIPTextEncoder

__all__ = ['TemplateClassEmbeddings', 'CATSegTextEncoder',
           'per_template_embeds', 'first_synonyms', 'SYNONYM_MODES']

#: ``synonyms`` options of :class:`CATSegTextEncoder`.
SYNONYM_MODES = ('all', 'first')


def first_synonyms(vocabulary: Vocabulary) -> Vocabulary:
    """The vocabulary with only the first name of each class.

    As CAT-Seg's ``get_text_embeds`` (``classname.split(', ')[0]``).
    """
    return Vocabulary([names[:1] for names in vocabulary.classes],
                      source=f'{vocabulary.source} (first synonyms)',
                      duplicate_synonyms='ignore', unique_names=False)


@dataclass
class TemplateClassEmbeddings(ClassEmbeddings):
    """:class:`ClassEmbeddings` that also keep every template's embedding.

    Attributes:
        template_embeds (Tensor): (N_names, P, D) unit-norm embeddings of
            each name in each of the P prompt templates; :attr:`embeds` is
            their normalised mean.
    """
    template_embeds: Optional[Tensor] = None

    def __post_init__(self):
        super().__post_init__()
        t = self.template_embeds
        if t is None or t.dim() != 3 or t.shape[0] != self.embeds.shape[0] \
                or t.shape[2] != self.embeds.shape[1]:
            raise ValueError(
                f'TemplateClassEmbeddings: template_embeds must be (N_names, '
                f'P, D) = ({self.embeds.shape[0]}, P, {self.embeds.shape[1]}),'
                f' got {None if t is None else tuple(t.shape)}.')

    def to(self, *args, **kwargs) -> 'TemplateClassEmbeddings':
        base = super().to(*args, **kwargs)
        return TemplateClassEmbeddings(
            base.embeds, base.name_to_class, base.vocabulary, base.reduction,
            base.logit_scale, self.template_embeds.to(*args, **kwargs))


def per_template_embeds(class_embeds: ClassEmbeddings) -> Tensor:
    """(N_names, P, D) text embeddings: per template if known, else P = 1."""
    template = getattr(class_embeds, 'template_embeds', None)
    if template is not None:
        return template
    return class_embeds.embeds[:, None]


@MODELS.register_module()
class CATSegTextEncoder(OpenCLIPTextEncoder):
    """:class:`OpenCLIPTextEncoder` returning per-template embeddings.

    Returns :class:`TemplateClassEmbeddings`. Embeddings are cached (memory
    and disk) per template while the tower is frozen or in eval mode; while
    training with trainable parameters they are computed with gradients.

    Args:
        unfrozen (Sequence[str]): ``fnmatch`` patterns of tower parameters
            that stay trainable (``frozen`` must be True), e.g.
            ``('transformer.resblocks.*.attn.in_proj_weight',)``.
        attn_parts (Sequence[str]): Which of Q, K, V of those fused
            projections learn (``('q', 'v')`` in CAT-Seg).
        synonyms (str): ``'all'`` (default) embeds every synonym of a class;
            ``'first'`` only the first, as the released CAT-Seg code.
        **kwargs: :class:`OpenCLIPTextEncoder` arguments.
    """

    def __init__(self,
                 unfrozen: Sequence[str] = (),
                 attn_parts: Sequence[str] = QKV_PARTS,
                 synonyms: str = 'all',
                 **kwargs):
        if synonyms not in SYNONYM_MODES:
            raise ValueError(f'CATSegTextEncoder: synonyms={synonyms!r}; use one of '
                             f'{SYNONYM_MODES}.')
        super().__init__(**kwargs)
        self.synonyms = synonyms
        if unfrozen:
            if not kwargs.get('frozen', True):
                raise ValueError('CATSegTextEncoder: `unfrozen` only applies '
                                 'with frozen=True.')
            freeze_except(self.tower, unfrozen, type(self).__name__)
        self.attn_parts = tuple(attn_parts)
        restrict_in_proj_grad(self.tower, self.attn_parts)

    def cache_key(self, names: Sequence[str] = ()) -> dict:
        return dict(super().cache_key(names), per_template=True)

    def _embed_names_uncached(self, names: Sequence[str]) -> Tensor:
        """Per-template unit embeddings, flattened to (N, P * D) rows."""
        prompts = [t.format(n) for n in names for t in self.templates]
        tokens = self.tokenize(prompts)
        self._warn_truncated(names, prompts, tokens)
        return self.encode_prompts(prompts, tokens).reshape(len(names), -1)

    def forward(self, vocabulary) -> TemplateClassEmbeddings:
        if self.synonyms == 'first':
            vocabulary = first_synonyms(Vocabulary.build(vocabulary))
        base = super().forward(vocabulary)
        template = base.embeds.reshape(base.embeds.shape[0],
                                       len(self.templates), -1)
        return TemplateClassEmbeddings(
            F.normalize(template.mean(dim=1), dim=-1), base.name_to_class,
            base.vocabulary, base.reduction, base.logit_scale, template)
