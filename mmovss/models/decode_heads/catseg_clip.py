"""The CLIP side of CAT-Seg: attention fine-tuning and per-template text.

CAT-Seg (Cho et al., CVPR 2024, Sec. 3.4 "Fine-tuning CLIP") fine-tunes the
query and value projections of every attention layer of both CLIP encoders
and keeps everything else frozen. open_clip stores the three projections of
a layer in one ``in_proj_weight`` (3W, W) matrix, so "Q and V only" is a
gradient mask on the K rows (:func:`restrict_in_proj_grad`): their gradient
is zero, AdamW's moments stay zero and the rows do not move (weight decay
aside: give these parameters ``decay_mult=0`` to keep K exactly fixed, as the
CAT-Seg configs do).

The cost volume of CAT-Seg has one channel per prompt template (Eq. 1,
``C(i, n, p) = <E_v(i), E_t(n, p)>`` with unit vectors), so the text encoder
here returns the embeddings of every template as well as their ensemble.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS
from ..backbones.clip_vit import OpenCLIPViT, freeze_except
from ..text_encoders.class_embeddings import ClassEmbeddings
from ..text_encoders.open_clip_text_encoder import OpenCLIPTextEncoder

__all__ = ['restrict_in_proj_grad', 'TemplateClassEmbeddings',
           'CATSegCLIPViT', 'CATSegTextEncoder', 'QKV_PARTS']

QKV_PARTS = ('q', 'k', 'v')


def restrict_in_proj_grad(module: nn.Module, parts: Sequence[str]) -> int:
    """Lets only some of Q, K, V learn in every trainable fused projection.

    For each ``nn.MultiheadAttention`` under ``module`` whose
    ``in_proj_weight`` (rows ``[W_q; W_k; W_v]``) requires gradients, a hook
    zeroes the gradient rows of the parts not listed (and the same for a
    trainable ``in_proj_bias``).

    Args:
        module (nn.Module): A CLIP tower (or any module).
        parts (Sequence[str]): Subset of ``('q', 'k', 'v')`` that may learn.

    Returns:
        int: Number of attention layers restricted.
    """
    parts = tuple(parts)
    unknown = [p for p in parts if p not in QKV_PARTS]
    if unknown or not parts:
        raise ValueError(f'attention parts {parts!r}: use a non-empty subset '
                         f'of {QKV_PARTS}, e.g. ("q", "v") as in CAT-Seg.')
    if set(parts) == set(QKV_PARTS):
        return 0
    count = 0
    for attn in module.modules():
        if not isinstance(attn, nn.MultiheadAttention):
            continue
        for name in ('in_proj_weight', 'in_proj_bias'):
            param = getattr(attn, name, None)
            if param is None or not param.requires_grad:
                continue
            width = param.shape[0] // 3
            keep = torch.zeros(param.shape[0], dtype=torch.bool)
            for part in parts:
                start = QKV_PARTS.index(part) * width
                keep[start:start + width] = True
            shape = (-1, ) + (1, ) * (param.dim() - 1)
            mask = keep.view(shape)
            param.register_hook(
                lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))
            count += 1
    return count


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
class CATSegCLIPViT(OpenCLIPViT):
    """:class:`OpenCLIPViT` with CAT-Seg's input size and Q/V fine-tuning.

    Args:
        input_size (tuple[int, int], optional): Images are resized
            (bilinear) to this size before the tower, as CAT-Seg feeds CLIP
            its own resolution (384 for ViT-B/16, 336 for ViT-L/14: a 24x24
            grid) whatever the crop size. None: no resizing.
        attn_parts (Sequence[str]): Which of Q, K, V of the trainable fused
            attention projections learn (``('q', 'v')`` in CAT-Seg).
        **kwargs: :class:`OpenCLIPViT` arguments (``unfrozen`` selects the
            trainable parameters, e.g.
            ``('transformer.resblocks.*.attn.in_proj_weight',)``).
    """

    def __init__(self,
                 input_size: Optional[Tuple[int, int]] = None,
                 attn_parts: Sequence[str] = QKV_PARTS,
                 **kwargs):
        super().__init__(**kwargs)
        if input_size is not None:
            input_size = tuple(int(s) for s in input_size)
            if len(input_size) != 2 or min(input_size) < 1:
                raise ValueError(f'CATSegCLIPViT: input_size={input_size}; '
                                 f'use (H, W), e.g. (384, 384).')
        self.input_size = input_size
        self.attn_parts = tuple(attn_parts)
        restrict_in_proj_grad(self.visual, self.attn_parts)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        if self.input_size is not None and \
                tuple(inputs.shape[2:]) != self.input_size:
            inputs = F.interpolate(inputs, size=self.input_size,
                                   mode='bilinear', align_corners=False)
        return super().forward(inputs)


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
        **kwargs: :class:`OpenCLIPTextEncoder` arguments.
    """

    def __init__(self,
                 unfrozen: Sequence[str] = (),
                 attn_parts: Sequence[str] = QKV_PARTS,
                 **kwargs):
        super().__init__(**kwargs)
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
        base = super().forward(vocabulary)
        template = base.embeds.reshape(base.embeds.shape[0],
                                       len(self.templates), -1)
        return TemplateClassEmbeddings(
            F.normalize(template.mean(dim=1), dim=-1), base.name_to_class,
            base.vocabulary, base.reduction, base.logit_scale, template)
