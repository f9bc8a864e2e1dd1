"""The simplest open-vocabulary head: cosine similarity to class embeddings."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['CLIPCosineHead']


@MODELS.register_module()
class CLIPCosineHead(OpenVocabDecodeHead):
    """Scores dense joint-space embeddings against class embeddings.

    ``s_n(p) = tau * <f(p) / |f(p)|, t_n>`` for each position ``p`` and name
    embedding ``t_n`` (CLIP zero-shot classification, Radford et al., ICML
    2021, Fig. 1, applied per position as in MaskCLIP, Zhou et al., ECCV
    2022), then reduced over synonyms to class logits.

    Args:
        in_channels (int): CLIP's joint embedding dimension.
        logit_scale (float, optional): The temperature ``tau``; None uses the
            CLIP model's (``ClassEmbeddings.logit_scale``, 100 for OpenAI).
        in_index (int): Input taken from the backbone outputs; -1 (default)
            is the dense embeddings of the mmovss CLIP backbones.
        **kwargs: Other :class:`OpenVocabDecodeHead` arguments.
    """

    declares_widths = False  # scores the dense embeddings as they are

    def __init__(self, in_channels: int, logit_scale: Optional[float] = None,
                 in_index: int = -1, **kwargs):
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(in_channels, in_channels, in_index=in_index,
                         **kwargs)
        self.logit_scale = logit_scale

    def forward(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings
                ) -> Tensor:
        feats = self._transform_inputs(inputs)
        if feats.shape[1] != class_embeds.embeds.shape[1]:
            raise ValueError(
                f'CLIPCosineHead: features have {feats.shape[1]} channels but '
                f'class embeddings have {class_embeds.embeds.shape[1]}; the '
                f'backbone and text encoder must come from the same CLIP.')
        feats = F.normalize(feats, dim=1)
        text = class_embeds.embeds.to(feats)
        logits = torch.einsum('bchw,nc->bnhw', feats, text)
        if self.logit_scale is not None:
            logits = logits * self.logit_scale
        elif class_embeds.logit_scale is not None:
            logits = logits * class_embeds.logit_scale.to(logits)
        return class_embeds.reduce(logits, dim=1)
