"""A light trainable decoder on CLIP's dense embeddings (open-vocabulary)."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.width_check import TEXT, DeclaredWidth
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['DenseEmbeddingRefineHead']


@MODELS.register_module()
class DenseEmbeddingRefineHead(OpenVocabDecodeHead):
    """Refines frozen CLIP dense embeddings, then scores them against text.

    With ``e(p)`` the joint-space embedding of position ``p`` (MaskCLIP, Zhou
    et al., ECCV 2022) and ``F(p)`` the chosen intermediate CLIP features,
    a small convolutional decoder ``g`` predicts a residual in the joint
    space::

        e'(p) = e(p) + g([F(p); e(p)])                    (g's last layer starts at 0)
        s_n(p) = tau * <e'(p) / |e'(p)|, t_n>              (cosine to name n)

    with a learnable temperature ``tau``. Nothing has a class-sized shape and
    the output stays in CLIP's joint space, so classes never seen in training
    are scored by their text embeddings alone. At initialisation the head
    equals zero-shot dense CLIP.

    Args:
        in_channels (Sequence[int]): Channels of the selected inputs; the
            LAST one must be the dense embeddings (joint dimension D).
        in_index (Sequence[int]): Backbone outputs to use (last: embeddings).
        channels (int): Hidden channels of the decoder.
        num_convs (int): 3x3 conv layers in the decoder (>= 1).
        upsample (int): Factor by which the decoder upsamples its input
            (bilinear) before its convolutions, for finer masks.
        logit_scale (float, optional): Initial ``tau``; None takes CLIP's.
        learn_logit_scale (bool): Train ``tau`` (in log space).
        **kwargs: Other :class:`OpenVocabDecodeHead` arguments.
    """

    supports_low_precision_cast = True
    #: Kept float32 on the cast path (``low_precision.cast_tower``): the
    #: residual's projection into the joint space and the logit scale, so
    #: ``e'``, its normalisation and the logits are float32; the decoder
    #: ``g`` runs in the low precision.
    float32_modules = ('to_residual', )
    float32_parameters = ('log_logit_scale', )

    def __init__(self,
                 in_channels: Sequence[int],
                 in_index: Sequence[int] = (0, -1),
                 channels: int = 64,
                 num_convs: int = 2,
                 upsample: int = 1,
                 logit_scale: Optional[float] = None,
                 learn_logit_scale: bool = True,
                 **kwargs):
        if len(in_channels) != len(in_index):
            raise ValueError('DenseEmbeddingRefineHead: in_channels and in_index '
                             f'differ in length ({len(in_channels)} vs {len(in_index)}).')
        if num_convs < 1:
            raise ValueError(f'DenseEmbeddingRefineHead: num_convs={num_convs}; use >= 1.')
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(list(in_channels), channels, in_index=list(in_index),
                         input_transform='multiple_select', **kwargs)
        self.embed_dim = in_channels[-1]
        self.upsample = upsample
        layers = []
        c_in = sum(in_channels)
        for _ in range(num_convs):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.GroupNorm(8, channels),
                       nn.GELU()]
            c_in = channels
        self.decoder = nn.Sequential(*layers)
        self.to_residual = nn.Conv2d(channels, self.embed_dim, 1)
        nn.init.zeros_(self.to_residual.weight)
        nn.init.zeros_(self.to_residual.bias)
        init = math.log(logit_scale) if logit_scale is not None else 0.0
        self.log_logit_scale = nn.Parameter(torch.tensor(float(init)),
                                            requires_grad=learn_logit_scale)
        # Saved with the weights, so a loaded head keeps its trained scale.
        self.register_buffer('scale_initialised', torch.tensor(logit_scale is not None))

    def declared_widths(self) -> List[DeclaredWidth]:
        """The inputs (``in_channels``); the last is the class-embedding width."""
        return super().declared_widths() + [
            DeclaredWidth('in_channels', len(self.in_channels) - 1, TEXT, self.embed_dim)]

    def init_weights(self):
        """Keeps the zero-initialised residual (mmseg would re-init convs)."""
        super().init_weights()
        nn.init.zeros_(self.to_residual.weight)
        nn.init.zeros_(self.to_residual.bias)

    def refine(self, inputs: Tuple[Tensor]) -> Tensor:
        """The refined dense embeddings ``e'`` (B, D, h', w'), not normalised."""
        feats = self._transform_inputs(inputs)
        embeds = feats[-1]
        if embeds.shape[1] != self.embed_dim:
            raise ValueError(f'DenseEmbeddingRefineHead: last input has {embeds.shape[1]} '
                             f'channels, expected the joint dimension {self.embed_dim}.')
        size = embeds.shape[2:]
        if self.upsample > 1:
            size = (size[0] * self.upsample, size[1] * self.upsample)
        feats = [f if f.shape[2:] == size else
                 F.interpolate(f, size=size, mode='bilinear', align_corners=False) for f in feats]
        x = torch.cat(feats, dim=1)
        return feats[-1] + self.to_residual(self.decoder(x))

    def forward(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings) -> Tensor:
        embeds = F.normalize(self.refine(inputs), dim=1)
        text = class_embeds.embeds.to(embeds)
        if text.shape[1] != embeds.shape[1]:
            raise ValueError(
                f'DenseEmbeddingRefineHead: embeddings have {embeds.shape[1]} channels, '
                f'class embeddings {text.shape[1]}; backbone and text encoder must come '
                'from the same CLIP.')
        if not bool(self.scale_initialised):
            # First call of a new head: start from CLIP's own temperature.
            scale = class_embeds.logit_scale
            with torch.no_grad():
                self.log_logit_scale.fill_(math.log(float(scale)) if scale is not None
                                           else math.log(100.0))
                self.scale_initialised.fill_(True)
        logits = torch.einsum('bchw,nc->bnhw', embeds, text) * self.log_logit_scale.exp()
        return class_embeds.reduce(logits, dim=1)
