"""CAT-Seg head: cost volume, cost aggregation, guided upsampling decoder."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcv.cnn import ConvModule
from mmseg.registry import MODELS

from ..text_encoders.catseg_text_encoder import per_template_embeds
from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.width_check import TEXT, DeclaredWidth
from .catseg_aggregation import (
    CATSegClassAggregation,
    CATSegSpatialAggregation,
    class_chunks,
    use_fused,
)
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['CATSegHead', 'CATSegUpBlock']


class CATSegUpBlock(nn.Module):
    """One decoder stage: 2x transposed conv, concat guidance, two convs.

    ``y = DoubleConv([Up(x); g])`` with ``DoubleConv`` = (3x3 conv, GN,
    ReLU) x 2 (CAT-Seg Sec. 3.3, "upsampling decoder").

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        guidance_channels (int): Channels of the guidance concatenated after
            upsampling (the upsampling makes ``in - guidance`` channels).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 guidance_channels: int):
        super().__init__()
        if not 0 <= guidance_channels < in_channels:
            raise ValueError(f'CATSegUpBlock: guidance_channels='
                             f'{guidance_channels} must be in [0, '
                             f'{in_channels}).')
        self.up = nn.ConvTranspose2d(in_channels,
                                     in_channels - guidance_channels, 2, 2)

        def conv(cin, cout):
            return ConvModule(
                cin, cout, 3, padding=1, bias=False,
                norm_cfg=dict(type='GN', num_groups=max(1, cout // 16)),
                act_cfg=dict(type='ReLU'))

        self.convs = nn.Sequential(conv(in_channels, out_channels),
                                   conv(out_channels, out_channels))
        #: fused path (under no_grad): the transposed conv as one product,
        #: channels-last convolutions, and the first conv split as
        #: ``conv([u; g]) = conv_u(u) + conv_g(g)`` (its bias, if any, in the
        #: first term), the guidance part computed once per view, not once per
        #: class (False: the reference path)
        self.fused = True

    def forward(self, x: Tensor, guidance: Optional[Tensor]) -> Tensor:
        """x: (B*m, C, H, W); guidance: (B, G, 2H, 2W), repeated m times."""
        if use_fused(self):
            return self._forward_fused(x, guidance)
        x = self.up(x)
        if guidance is not None:
            reps = x.shape[0] // guidance.shape[0]
            x = torch.cat([x, guidance.repeat_interleave(reps, dim=0)], dim=1)
        return self.convs(x)

    def upsample(self, x: Tensor) -> Tensor:
        """The 2x2, stride-2 transposed conv as one product, channels-last.

        Its windows do not overlap: ``out[2i+a, 2j+b] = W[:, :, a, b]^T x[i, j]
        + bias``, so it is (B*H*W, C_in) x (C_in, 4 C_out) followed by the
        pixel interleave (which adds the bias on the way).
        """
        up = self.up
        if tuple(up.kernel_size) != (2, 2) or tuple(up.stride) != (2, 2) or \
                tuple(up.padding) != (0, 0) or tuple(up.output_padding) != (0, 0) \
                or up.groups != 1 or tuple(up.dilation) != (1, 1):
            return up(x.contiguous(memory_format=torch.channels_last))
        n, cin, h, w = x.shape
        cout = up.out_channels
        tokens = x.permute(0, 2, 3, 1).reshape(n * h * w, cin)
        prod = torch.mm(tokens, up.weight.permute(0, 2, 3, 1).reshape(cin, 4 * cout))
        prod = prod.view(n, h, w, 2, 2, cout).permute(0, 1, 3, 2, 4, 5)
        out = x.new_empty(n, h, 2, w, 2, cout)
        if up.bias is not None:
            torch.add(prod, up.bias, out=out)
        else:
            out.copy_(prod)
        return out.view(n, 2 * h, 2 * w, cout).permute(0, 3, 1, 2)

    def _forward_fused(self, x: Tensor, guidance: Optional[Tensor]) -> Tensor:
        x = self.upsample(x)
        if guidance is None:
            return self.convs(x)
        first = self.convs[0]
        conv = first.conv
        split = x.shape[1]
        y = F.conv2d(x, conv.weight[:, :split], conv.bias, conv.stride, conv.padding,
                     conv.dilation, conv.groups)
        g = F.conv2d(guidance.contiguous(memory_format=torch.channels_last),
                     conv.weight[:, split:], None, conv.stride, conv.padding,
                     conv.dilation, conv.groups)
        y.view(g.shape[0], -1, *y.shape[1:]).add_(g[:, None])
        return self.convs[1](first.activate(first.norm(y)))


@MODELS.register_module()
class CATSegHead(OpenVocabDecodeHead):
    """CAT-Seg (Cho et al., CVPR 2024) as an open-vocabulary decode head.

    1. Cost volume (Eq. 1) between unit CLIP dense embeddings ``E_v(i)`` and
       unit text embeddings ``E_t(n, p)`` of every name ``n`` and template
       ``p``: ``C(i, n, p) = E_v(i) . E_t(n, p)``.
    2. Cost embedding (Eq. 2): a 7x7 conv from the P templates to C channels,
       per class.
    3. ``num_layers`` x (spatial aggregation, Eq. 3, then class aggregation,
       Eq. 4), guided by projected ``E_v`` and ``E_t``
       (:mod:`.catseg_aggregation`).
    4. Upsampling decoder (Sec. 3.3): two :class:`CATSegUpBlock` (x2 each)
       guided by intermediate CLIP layers, upsampled by transposed convs
       (x2, x4) and projected; a 3x3 conv gives one logit per class.

    No layer depends on the number of classes. With more than ``pad_len``
    names, only the ``pad_len`` names with the highest cost anywhere in the
    image are aggregated (CAT-Seg's inference on A-847 / PC-459); the others
    get logit -100. Classes are processed ``class_chunk_size`` at a time
    wherever the method allows (all but the attention across classes,
    whose queries are chunked), with the same result as unchunked.

    Args:
        in_channels (Sequence[int]): Channels of the inputs picked by
            ``in_index``: two intermediate CLIP layers (decoder guidance,
            the earlier one first), then the dense joint-space embeddings.
        in_index (Sequence[int]): Backbone outputs used (default (0, 1, 2)).
        channels (int): Cost-embedding channels (hidden dim, 128).
        num_templates (int): Prompt templates P of the cost volume.
        text_guidance_channels (int): Projected text-guidance channels.
        appearance_guidance_channels (int): Projected appearance guidance.
        decoder_channels (Sequence[int]): Channels of the 2 decoder stages.
        decoder_guidance_channels (Sequence[int]): Channels the 2 guidance
            layers are upsampled to (x2 and x4 transposed convs).
        decoder_guidance_proj_channels (Sequence[int]): Their projections.
        num_layers (int): Aggregation layers.
        num_heads (int): Attention heads.
        window_size (int): Swin window of the spatial aggregation.
        pooling_size (Sequence[int]): Average pooling before class
            aggregation in training (CAT-Seg: 2x2).
        test_pooling_size (Sequence[int]): Same at inference (CAT-Seg: 1x1).
        attention (str): Class attention, ``'linear'`` or ``'softmax'``.
        pad_len (int): Fixed class-sequence length (0: none; CAT-Seg: 256).
        class_chunk_size (int, optional): Classes processed at once
            (None: all).
        fused (bool): Fused inference paths: the cost embedding kept in a
            channels-last layout, guidance projections computed once per
            view or class, Swin windows gathered once, channels-last
            decoder (:mod:`.catseg_aggregation`, :class:`CATSegUpBlock`).
            Equal to the reference paths (False) within float rounding.
        decoder_class_chunk_size (int, optional): Classes decoded at once on
            the fused path, at most ``class_chunk_size`` (None: that). The
            decoder's activations at 4x the grid are the largest tensors
            (5 views x 16 classes x 64 channels x 96 x 96 floats = 189 MB);
            the decoder is per class, so the result does not depend on it.
        **kwargs: :class:`OpenVocabDecodeHead` arguments (``loss_decode``:
            CAT-Seg uses per-pixel binary cross-entropy,
            ``CrossEntropyLoss(use_sigmoid=True)``).
    """

    supports_low_precision_cast = True

    def __init__(self,
                 in_channels: Sequence[int],
                 in_index: Sequence[int] = (0, 1, 2),
                 channels: int = 128,
                 num_templates: int = 1,
                 text_guidance_channels: int = 128,
                 appearance_guidance_channels: int = 128,
                 decoder_channels: Sequence[int] = (64, 32),
                 decoder_guidance_channels: Sequence[int] = (256, 128),
                 decoder_guidance_proj_channels: Sequence[int] = (32, 16),
                 num_layers: int = 2,
                 num_heads: int = 4,
                 window_size: int = 12,
                 pooling_size: Sequence[int] = (2, 2),
                 test_pooling_size: Sequence[int] = (1, 1),
                 attention: str = 'linear',
                 pad_len: int = 256,
                 class_chunk_size: Optional[int] = None,
                 fused: bool = True,
                 decoder_class_chunk_size: Optional[int] = 16,
                 **kwargs):
        if len(in_channels) != 3 or len(in_index) != 3:
            raise ValueError(
                f'CATSegHead: in_channels {list(in_channels)} and in_index '
                f'{list(in_index)} must each name 3 inputs: two CLIP layers '
                f'(decoder guidance) and the dense embeddings.')
        for name, value in (('decoder_channels', decoder_channels),
                            ('decoder_guidance_channels',
                             decoder_guidance_channels),
                            ('decoder_guidance_proj_channels',
                             decoder_guidance_proj_channels)):
            if len(value) != 2:
                raise ValueError(f'CATSegHead: {name} must have 2 entries '
                                 f'(two decoder stages), got {list(value)}.')
        if num_templates < 1:
            raise ValueError(f'CATSegHead: num_templates={num_templates}; '
                             f'use >= 1.')
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(list(in_channels), channels, in_index=list(in_index),
                         input_transform='multiple_select', **kwargs)
        guide_a, guide_b, embed_dim = in_channels
        self.embed_dim = embed_dim
        self.num_templates = num_templates
        self.pooling_size = tuple(pooling_size)
        self.test_pooling_size = tuple(test_pooling_size)
        self.pad_len = pad_len
        self.class_chunk_size = class_chunk_size
        class_chunks(1, class_chunk_size)  # validates the value
        class_chunks(1, decoder_class_chunk_size)
        self.decoder_class_chunk_size = decoder_class_chunk_size

        def relu_conv(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1),
                                 nn.ReLU())

        self.cost_embed = nn.Conv2d(num_templates, channels, 7, padding=3)
        self.appearance_guidance = relu_conv(
            embed_dim, appearance_guidance_channels) \
            if appearance_guidance_channels > 0 else None
        self.text_guidance = nn.Sequential(
            nn.Linear(embed_dim, text_guidance_channels), nn.ReLU()) \
            if text_guidance_channels > 0 else None
        self.spatial_layers = nn.ModuleList()
        self.class_layers = nn.ModuleList()
        for _ in range(num_layers):
            self.spatial_layers.append(CATSegSpatialAggregation(
                channels, appearance_guidance_channels, num_heads,
                window_size))
            self.class_layers.append(CATSegClassAggregation(
                channels, text_guidance_channels, num_heads, attention,
                pad_len))
        # intermediate CLIP layers -> decoder guidance (x2, x4)
        self.guidance_up = nn.ModuleList([
            nn.ConvTranspose2d(guide_a, decoder_guidance_channels[0], 2, 2),
            nn.ConvTranspose2d(guide_b, decoder_guidance_channels[1], 4, 4),
        ])
        self.guidance_proj = nn.ModuleList([
            relu_conv(c, p) for c, p in zip(decoder_guidance_channels,
                                            decoder_guidance_proj_channels)
        ])
        self.decoder = nn.ModuleList([
            CATSegUpBlock(channels, decoder_channels[0],
                          decoder_guidance_proj_channels[0]),
            CATSegUpBlock(decoder_channels[0], decoder_channels[1],
                          decoder_guidance_proj_channels[1]),
        ])
        self.to_logit = nn.Conv2d(decoder_channels[1], 1, 3, padding=1)
        self.fused = fused

    #: Submodules kept float32 when the head is cast to low precision
    #: (``test_cfg.precision_mode='cast'``, :func:`~mmovss.models.utils.
    #: low_precision.cast_tower`): Eq. 2's embedding of the cost volume and
    #: the final logit convolution. With the cost volume itself (Eq. 1,
    #: always float32) they keep the small differences between the classes'
    #: cosines and logits out of bfloat16's 8-bit mantissa; the aggregation
    #: layers and the decoder run in the low precision.
    float32_modules = ('cost_embed', 'to_logit')

    def declared_widths(self) -> List[DeclaredWidth]:
        """The two CLIP layers and the dense embeddings (``in_channels``), and
        the class-embedding width, ``in_channels[2]``."""
        return super().declared_widths() + [DeclaredWidth('in_channels', 2, TEXT, self.embed_dim)]

    @property
    def fused(self) -> bool:
        """Fused inference paths (default); False: the reference paths.

        Setting it sets the same switch of the aggregation layers and
        decoder blocks (see :mod:`.catseg_aggregation`).
        """
        return self._fused

    @fused.setter
    def fused(self, value: bool):
        self._fused = bool(value)
        for module in self.modules():
            if module is not self and hasattr(module, 'fused'):
                module.fused = self._fused

    # ------------------------------------------------------------ pieces
    def cost_volume(self, embeds: Tensor, text: Tensor) -> Tensor:
        """Eq. 1: (B, D, H, W) x (N, P, D) -> cosine costs (B, P, N, H, W)."""
        return torch.einsum('bdhw,npd->bpnhw', F.normalize(embeds, dim=1),
                            F.normalize(text, dim=-1))

    def select_classes(self, cost: Tensor) -> Optional[Tensor]:
        """Indices (B, pad_len) of the names kept when N > ``pad_len``.

        A name's score is its highest cost over templates and positions.
        """
        num = cost.shape[2]
        if self.pad_len <= 0 or num <= self.pad_len:
            return None
        score = cost.transpose(1, 2).flatten(2).amax(dim=-1)  # (B, N)
        return score.topk(self.pad_len, dim=-1, sorted=False).indices

    def per_class(self, fn, x: Tensor, chunk: Optional[int] = None) -> Tensor:
        """Applies ``fn`` to (B*m, C, H, W) slices of x (B, C, N, H, W).

        Fused: the slices are channels-last, ``chunk`` classes at a time
        (default ``class_chunk_size``), and the result is a
        (B, C', N, H', W') view of a channels-last (B, N, H', W', C')
        tensor.
        """
        b, _, n = x.shape[:3]
        if use_fused(self):
            return self._per_class_channels_last(fn, x, chunk or self.class_chunk_size)
        outs = []
        for start, end in class_chunks(n, self.class_chunk_size):
            part = x[:, :, start:end].transpose(1, 2).flatten(0, 1)
            out = fn(part)
            outs.append(out.view(b, end - start, *out.shape[1:]))
        return torch.cat(outs, dim=1).transpose(1, 2)

    def _per_class_channels_last(self, fn, x: Tensor, chunk: Optional[int]) -> Tensor:
        b, _, n, h, w = x.shape
        tokens = x.permute(0, 2, 3, 4, 1)  # (B, N, H, W, C)
        chunks = class_chunks(n, chunk)
        out = None
        for start, end in chunks:
            part = tokens[:, start:end].reshape(b * (end - start), h, w, -1)
            res = fn(part.permute(0, 3, 1, 2))
            res = res.permute(0, 2, 3, 1).reshape(b, end - start, *res.shape[2:],
                                                  res.shape[1])
            if len(chunks) == 1:
                return res.permute(0, 4, 1, 2, 3)
            if out is None:
                out = res.new_empty(b, n, *res.shape[2:])
            out[:, start:end] = res
        return out.permute(0, 4, 1, 2, 3)

    def embed_cost(self, cost: Tensor) -> Tensor:
        """Eq. 2 on (B*m, P, H, W) costs; channels-last output when fused."""
        if use_fused(self):
            cost = cost.contiguous(memory_format=torch.channels_last)
            weight = self.cost_embed.weight.contiguous(memory_format=torch.channels_last)
            return F.conv2d(cost, weight, self.cost_embed.bias, padding=self.cost_embed.padding)
        return self.cost_embed(cost)

    def decode(self, x: Tensor, guidance: List[Optional[Tensor]]) -> Tensor:
        """Upsampling decoder on (B*m, C, H, W) -> logits (B*m, 1, 4H, 4W)."""
        for block, g in zip(self.decoder, guidance):
            x = block(x, g)
        return self.to_logit(x)

    def _check_text(self, text: Tensor):
        if text.shape[-1] != self.embed_dim:
            raise ValueError(
                f'CATSegHead: text embeddings have {text.shape[-1]} channels, '
                f'image embeddings {self.embed_dim}; backbone and text '
                f'encoder must come from the same CLIP.')
        if text.shape[1] != self.num_templates:
            raise ValueError(
                f'CATSegHead: the text encoder gives {text.shape[1]} '
                f'template(s) per name but num_templates='
                f'{self.num_templates}; set num_templates to the number of '
                f'templates (CATSegTextEncoder) or use 1 with a template-'
                f'averaging text encoder.')

    # ------------------------------------------------------------ forward
    def forward(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings
                ) -> Tensor:
        guide_a, guide_b, embeds = self._transform_inputs(inputs)
        if embeds.shape[1] != self.embed_dim:
            raise ValueError(
                f'CATSegHead: the dense embeddings (input {self.in_index[-1]})'
                f' have {embeds.shape[1]} channels, expected {self.embed_dim}.')
        text = per_template_embeds(class_embeds).to(embeds)
        self._check_text(text)
        b = embeds.shape[0]
        stream = embeds.dtype  # the head's dtype (low on the cast path)
        cost = self.cost_volume(embeds.float(), text.float())  # (B, P, N, H, W)
        num_names = cost.shape[2]
        keep = self.select_classes(cost)
        text_unit = F.normalize(F.normalize(text, dim=-1).mean(dim=1), dim=-1)
        text_guidance = self.text_guidance(text_unit) \
            if self.text_guidance is not None else None  # (N, G)
        if text_guidance is not None:
            text_guidance = text_guidance.expand(b, -1, -1)
        if keep is not None:
            cost = torch.gather(cost, 2, keep[:, None, :, None, None].expand(
                -1, cost.shape[1], -1, *cost.shape[3:]))
            if text_guidance is not None:
                text_guidance = torch.gather(text_guidance, 1, keep[..., None].expand(
                    -1, -1, text_guidance.shape[-1]))
        appearance = self.appearance_guidance(embeds) \
            if self.appearance_guidance is not None else None
        decoder_guidance = [
            proj(up(g)) for up, proj, g in zip(
                self.guidance_up, self.guidance_proj, (guide_a, guide_b))
        ]
        x = self.per_class(lambda c: self.embed_cost(c).to(stream),
                           cost)  # (B, C, N, H, W)
        pooling = self.pooling_size if self.training else \
            self.test_pooling_size
        for spatial, cls in zip(self.spatial_layers, self.class_layers):
            x = spatial(x, appearance, self.class_chunk_size)
            x = cls(x, text_guidance, pooling, self.class_chunk_size)
        decoder_chunk = self.class_chunk_size
        if self.decoder_class_chunk_size is not None:
            decoder_chunk = min(self.decoder_class_chunk_size, decoder_chunk or x.shape[2])
        logits = self.per_class(lambda t: self.decode(t, decoder_guidance), x,
                                decoder_chunk)[:, 0]  # (B, N', 4H, 4W)
        if keep is not None:
            full = logits.new_full((b, num_names, *logits.shape[2:]), -100.0)
            logits = full.scatter(1, keep[:, :, None, None].expand_as(logits),
                                  logits)
        return class_embeds.reduce(logits, dim=1)
