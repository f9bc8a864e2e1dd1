"""FC-CLIP (Yu et al., NeurIPS 2023): one frozen convolutional CLIP for both
mask generation and classification.

* A pixel decoder (:class:`~mmovss.models.necks.MSDeformAttnPixelDecoder`)
  and a Mask2Former masked-attention transformer decoder
  (:class:`MaskedAttentionDecoder`) on the frozen ConvNeXt CLIP stage maps
  predict masks and, per query, an embedding in CLIP's joint space
  (mask-pooled pixel features + query features through an MLP); its
  cosine to the class names gives the in-vocabulary logits (paper Sec. 3.2).
* At inference the frozen CLIP's dense embeddings are mask-pooled
  (:class:`~mmovss.models.necks.MaskPooling`) and classified against the
  names (out-of-vocabulary logits); both are combined by the geometric
  ensemble (:func:`~mmovss.models.utils.geometric_ensemble`, Eq. 6) with
  ``alpha`` for classes seen in training and ``beta`` for the others.

By default pooling is applied to the backbone's dense joint-space embeddings
(the CLIP head applied at every position, ``OpenCLIPConvNeXt``); the official
code (``fcclip/fcclip.py``, ``FCCLIP.forward``) pools the last-stage features
and applies the head afterwards: ``ov_pooling='features'`` with
:class:`~mmovss.models.segmentors.FCCLIPEncoderDecoder` and a backbone with
``dense_output='features'``. The other official behaviours are options too:
``ensemble_valid_mask`` (the official ``ENSEMBLE_ON_VALID_MASK``, False for
ConvNeXt-L), ``mask_upsample='logits'`` (mask logits upsampled to the padded
input before the sigmoid) and ``ov_logit_scale_max`` (CLIP's temperature
clamped at 100).
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmovss.vocab import Vocabulary

from mmseg.models.utils import MLP
from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.mask_classification import (
    geometric_ensemble,
    open_vocab_class_logits,
    seen_class_mask,
    semantic_inference,
)
from ..utils.position_embedding import sine_position_embedding
from ..utils.query_decoder_layer import QueryDecoderLayer
from .mask_classification_head import MaskClassificationHead

__all__ = ['MaskedAttentionDecoder', 'FCCLIPHead']


class MaskedAttentionDecoder(nn.Module):
    """Mask2Former's transformer decoder with FC-CLIP's class branch.

    Each layer cross-attends to one level of the pixel decoder (round
    robin), restricted to the pixels inside the previous mask prediction
    (Cheng et al., CVPR 2022, Eq. 3). After every layer (and before the
    first) masks ``m = mask_mlp(q) . F`` and class embeddings
    ``e = class_mlp(q + proj(MaskPool(F, m)))`` are predicted.

    Args:
        channels (int): Width (256).
        mask_channels (int): Channels of the mask features.
        embed_dim (int): CLIP joint dimension (class embeddings).
        num_queries (int): Queries (FC-CLIP: 250).
        num_layers (int): Decoder layers (9).
        num_heads (int): Heads (8).
        ffn_channels (int): FFN width (2048).
    """

    def __init__(self, channels: int, mask_channels: int, embed_dim: int,
                 num_queries: int = 250, num_layers: int = 9,
                 num_heads: int = 8, ffn_channels: int = 2048):
        super().__init__()
        self.num_heads = num_heads
        self.layers = nn.ModuleList(
            QueryDecoderLayer(channels, num_heads, ffn_channels,
                              cross_first=True) for _ in range(num_layers))
        self.norm = nn.LayerNorm(channels)
        self.query_feat = nn.Embedding(num_queries, channels)
        self.query_pos = nn.Embedding(num_queries, channels)
        self.level_embed = nn.Embedding(3, channels)
        self.mask_mlp = MLP(channels, channels, mask_channels, 3)
        self.pool_proj = nn.Sequential(nn.LayerNorm(mask_channels),
                                       nn.Linear(mask_channels, channels))
        self.class_mlp = MLP(channels, channels, embed_dim, 3)
        # learned temperature, initialised as CLIP's (1 / 0.07), <= 100
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        from ..necks.mask_pooling import MaskPooling
        self.mask_pooling = MaskPooling()

    def sets(self, q: Tensor, mask_feats: Tensor) -> Tuple[Tensor, Tensor]:
        """Mask logits (B, Q, H, W) and class embeddings (B, Q, D) of queries."""
        q = self.norm(q)
        masks = torch.einsum('bqc,bchw->bqhw', self.mask_mlp(q), mask_feats)
        pooled = self.pool_proj(self.mask_pooling(mask_feats, masks))
        return masks, self.class_mlp(q + pooled)

    def heads(self, q: Tensor, mask_feats: Tensor, target_hw):
        masks, embeds = self.sets(q, mask_feats)
        return masks, embeds, self.attention_mask(masks, target_hw)

    def attention_mask(self, masks: Tensor, target_hw) -> Tensor:
        """(B * heads, Q, h * w) bool: True where a query may not attend;
        (Q, h * w) for a batch of one, which PyTorch's attention broadcasts
        over the heads (one mask instead of a copy per head, also in the
        additive float mask that attention makes of it).

        The mask logits are resized bilinearly to the attended level
        (``target_hw``); pixels whose mask probability is below 0.5 are
        excluded, and a query with an empty mask attends everywhere.
        """
        if tuple(masks.shape[-2:]) != tuple(target_hw):
            masks = F.interpolate(masks, size=tuple(target_hw), mode='bilinear',
                                  align_corners=False)
        attn = (masks.sigmoid().flatten(2) < 0.5)
        attn[attn.all(-1)] = False  # an empty mask attends everywhere
        if attn.shape[0] == 1:
            return attn[0].detach()
        return attn.repeat_interleave(self.num_heads, dim=0).detach()

    def forward(self, mask_feats: Tensor, levels: Sequence[Tensor],
                last_only: bool = False) -> Tuple[List[Tensor], List[Tensor]]:
        """Mask logits and class embeddings after every layer.

        Args:
            mask_feats (Tensor): (B, C, H, W) mask features.
            levels (Sequence[Tensor]): Pixel-decoder levels attended in turn.
            last_only (bool): Return only the last layer's masks and
                embeddings (inference). The earlier layers then predict only
                their attention masks, directly at the attended level's size
                from the mask features resized there: bilinear resizing is
                linear, so ``resize(e . F) = e . resize(F)`` (equal up to
                float rounding), and the full-size masks, their mask pooling
                and class embeddings, which only the losses of the earlier
                layers read, are not computed.

        Returns:
            tuple[list[Tensor], list[Tensor]]: Masks (B, Q, H, W) and class
            embeddings (B, Q, D), one per layer and one before the first
            (``last_only``: the last of each).
        """
        mems, poss = [], []
        for i, x in enumerate(levels):
            poss.append(sine_position_embedding(
                x, x.shape[1] // 2).flatten(2).transpose(1, 2))
            mems.append(x.flatten(2).transpose(1, 2) +
                        self.level_embed.weight[i])
        b = mask_feats.shape[0]
        q = self.query_feat.weight[None].expand(b, -1, -1)
        q_pos = self.query_pos.weight[None].expand(b, -1, -1)
        if last_only:
            resized = {}

            def attention_only(q: Tensor, target_hw) -> Tensor:
                hw = tuple(target_hw)
                if hw not in resized:
                    resized[hw] = mask_feats if tuple(mask_feats.shape[-2:]) == hw \
                        else F.interpolate(mask_feats, size=hw, mode='bilinear',
                                           align_corners=False)
                masks = torch.einsum('bqc,bchw->bqhw', self.mask_mlp(self.norm(q)),
                                     resized[hw])
                return self.attention_mask(masks, hw)

            attn = attention_only(q, levels[0].shape[-2:])
            for i, layer in enumerate(self.layers):
                lvl = i % len(levels)
                q = layer(q, q_pos, mems[lvl], poss[lvl], attn)
                if i + 1 < len(self.layers):
                    attn = attention_only(q, levels[(i + 1) % len(levels)].shape[-2:])
            masks, embeds = self.sets(q, mask_feats)
            return [masks], [embeds]
        masks, embeds = [], []
        m, e, attn = self.heads(q, mask_feats, levels[0].shape[-2:])
        masks.append(m)
        embeds.append(e)
        for i, layer in enumerate(self.layers):
            lvl = i % len(levels)
            q = layer(q, q_pos, mems[lvl], poss[lvl], attn)
            nxt = levels[(i + 1) % len(levels)].shape[-2:]
            m, e, attn = self.heads(q, mask_feats, nxt)
            masks.append(m)
            embeds.append(e)
        return masks, embeds


@MODELS.register_module()
class FCCLIPHead(MaskClassificationHead):
    """FC-CLIP head on ``OpenCLIPConvNeXt`` outputs (4 stages + dense).

    Args:
        in_channels (Sequence[int]): Channels of the four stage maps.
        embed_dim (int): CLIP joint dimension.
        pixel_decoder (dict): Pixel decoder config.
        channels (int): Decoder width (256).
        num_queries, num_layers, num_heads, ffn_channels: Decoder sizes.
        seen_vocabulary: Training classes (a list, file or benchmark
            vocabulary); classes of the test vocabulary sharing a name with
            them use ``alpha``, the others ``beta``. None: all unseen.
        alpha (float): Out-of-vocabulary weight of seen classes (0.4).
        beta (float): Out-of-vocabulary weight of unseen classes (0.8).
        ensemble (bool): Use the geometric ensemble at inference.
        mask_pooling (dict): Mask-pooling neck config.
        criterion (dict): :class:`MaskClassificationLoss` config.
        ensemble_valid_mask (bool): Queries whose mask is empty at the CLIP
            resolution keep the in-vocabulary scores (default). The official
            ``ENSEMBLE_ON_VALID_MASK`` is False for ConvNeXt-L (True for its
            ResNet CLIPs).
        ov_pooling (str): What the out-of-vocabulary branch pools:
            ``'embeddings'`` (default: the backbone's last output is the dense
            joint-space embedding map) or ``'features'`` (the official order:
            the last stage map is pooled, then the CLIP head is applied by the
            backbone's ``project_pooled``, bound by
            :class:`~mmovss.models.segmentors.FCCLIPEncoderDecoder`).
        mask_upsample (str): At inference, ``'scores'`` (default) gives the
            per-class scores at 1/4 of the input, which the segmentor resizes;
            ``'logits'`` upsamples the mask logits to the padded input before
            the sigmoid, as the official ``FCCLIP.forward``; ``'original'``
            also crops and resizes them to the original image size before the
            sigmoid (the official evaluation with ``PANOPTIC_ON``; done by
            :class:`~mmovss.models.segmentors.FCCLIPEncoderDecoder`, this
            head's ``predict`` then acts as ``'logits'``).
        ov_logit_scale_max (float, optional): Clamp of CLIP's temperature in
            the out-of-vocabulary logits (official: 100); None: unclamped.
    """

    #: bf16 with weights cast once (``test_cfg.precision_mode='cast'``),
    #: checked against float32 (tests/test_low_precision_heads.py).
    supports_low_precision_cast = True
    #: Kept float32 on the cast path (``low_precision.cast_tower``): the
    #: deformable attention's sampling offsets and weights (the sampling
    #: itself runs in float32, :class:`~mmovss.models.necks.MSDeformAttn`),
    #: the class branch's projection into the joint space (``class_mlp``),
    #: the void embedding and the temperature; the out-of-vocabulary mask
    #: pooling is float32, and the final mask logits and both classifiers'
    #: logits are returned in float32 (:meth:`final_sets`). The pixel
    #: decoder's projections and FFNs, the transformer decoder and the mask
    #: embeddings run in bf16.
    float32_modules = ('sampling_offsets', 'attention_weights', 'class_mlp')
    float32_parameters = ('decoder.logit_scale', 'void_embed')
    #: The class embeddings stay float32 on the cast path (both classifiers
    #: compare float32 embeddings with them).
    float32_class_embeddings = True
    text_width_key = 'embed_dim'  # the class branch's output, the void embedding

    def __init__(self,
                 in_channels: Sequence[int],
                 embed_dim: int,
                 pixel_decoder: Optional[dict] = None,
                 channels: int = 256,
                 num_queries: int = 250,
                 num_layers: int = 9,
                 num_heads: int = 8,
                 ffn_channels: int = 2048,
                 seen_vocabulary=None,
                 alpha: float = 0.4,
                 beta: float = 0.8,
                 ensemble: bool = True,
                 mask_pooling: dict = dict(type='MaskPooling'),
                 criterion: dict = dict(type='MaskClassificationLoss'),
                 ensemble_valid_mask: bool = True,
                 ov_pooling: str = 'embeddings',
                 mask_upsample: str = 'scores',
                 ov_logit_scale_max: Optional[float] = None,
                 **kwargs):
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(list(in_channels), channels, criterion=criterion,
                         input_transform='multiple_select',
                         in_index=[0, 1, 2, 3], **kwargs)
        pixel_decoder = dict(pixel_decoder or dict(
            type='MSDeformAttnPixelDecoder'))
        pixel_decoder.setdefault('in_channels', list(in_channels))
        pixel_decoder.setdefault('channels', channels)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        mask_channels = self.pixel_decoder.mask_proj.out_channels
        self.decoder = MaskedAttentionDecoder(channels, mask_channels,
                                              embed_dim, num_queries,
                                              num_layers, num_heads,
                                              ffn_channels)
        self.embed_dim = embed_dim
        self.void_embed = nn.Parameter(torch.randn(1, embed_dim) * 0.02)
        self.mask_pooling = MODELS.build(mask_pooling)
        self.seen_names = () if seen_vocabulary is None else \
            Vocabulary.build(seen_vocabulary).names
        self.alpha, self.beta, self.ensemble = alpha, beta, ensemble
        if ov_pooling not in ('embeddings', 'features'):
            raise ValueError(f"FCCLIPHead: ov_pooling must be 'embeddings' or 'features', "
                             f'got {ov_pooling!r}.')
        if mask_upsample not in ('scores', 'logits', 'original'):
            raise ValueError(f"FCCLIPHead: mask_upsample must be 'scores', 'logits' or "
                             f"'original', got {mask_upsample!r}.")
        self.ensemble_valid_mask = ensemble_valid_mask
        self.ov_pooling = ov_pooling
        self.mask_upsample = mask_upsample
        self.ov_logit_scale_max = ov_logit_scale_max
        self.pool_projection = None

    def set_pool_projection(self, projection) -> None:
        """The CLIP head for ``ov_pooling='features'``: (B, Q, C) -> (B, Q, D).

        :class:`~mmovss.models.segmentors.FCCLIPEncoderDecoder` binds the
        backbone's ``project_pooled`` (the frozen CLIP's own head, so no
        weights are duplicated).
        """
        self.pool_projection = projection

    def in_vocab_logits(self, embeds: Tensor,
                        class_embeds: ClassEmbeddings) -> Tensor:
        scale = self.decoder.logit_scale.exp().clamp(max=100)
        return open_vocab_class_logits(embeds, class_embeds, self.void_embed,
                                       scale)

    def forward_sets(self, inputs, class_embeds, last_only: bool = False):
        """Mask logits and in-vocabulary class logits of every decoder layer
        (``last_only``: of the last one, see
        :meth:`MaskedAttentionDecoder.forward`)."""
        stages = self._transform_inputs(inputs)
        mask_feats, levels = self.pixel_decoder(stages)
        masks, embeds = self.decoder(mask_feats, levels, last_only=last_only)
        return masks, [self.in_vocab_logits(e, class_embeds) for e in embeds]

    def pooled_clip_embeddings(self, inputs, masks: Tensor) -> Tensor:
        """Mask-pooled frozen-CLIP embeddings (B, Q, D) of the final masks.

        ``ov_pooling='embeddings'``: pooling of the dense embeddings;
        ``'features'``: pooling of the last stage map, then the CLIP head
        (official ``FCCLIP.forward`` with ``visual_prediction_forward``).
        """
        pooled = self.mask_pooling(inputs[-1].float(), masks.float())
        if self.ov_pooling == 'embeddings':
            return pooled
        if self.pool_projection is None:
            raise RuntimeError(
                "FCCLIPHead(ov_pooling='features') needs the backbone's CLIP head: build "
                "the model as type='FCCLIPEncoderDecoder' with an OpenCLIPConvNeXt "
                "backbone of dense_output='features'.")
        return self.pool_projection(pooled)

    def out_vocab_logits(self, pooled: Tensor,
                         class_embeds: ClassEmbeddings) -> Tensor:
        """Out-of-vocabulary logits (B, Q, C) of pooled CLIP embeddings."""
        scale = class_embeds.logit_scale
        if scale is not None and self.ov_logit_scale_max is not None:
            scale = torch.as_tensor(scale).clamp(max=self.ov_logit_scale_max)
        return open_vocab_class_logits(pooled, class_embeds, logit_scale=scale)

    def valid_masks(self, inputs, masks: Tensor) -> Tensor:
        """(B, Q) bool: masks with a positive logit at the CLIP resolution."""
        return self.mask_pooling.binary_masks(
            masks, inputs[-1].shape[-2:]).flatten(2).sum(-1) > 0

    def ensemble_logits(self, inputs, masks: Tensor, in_logits: Tensor,
                        class_embeds: ClassEmbeddings) -> Tensor:
        """FC-CLIP's geometric ensemble with mask-pooled CLIP embeddings."""
        pooled = self.pooled_clip_embeddings(inputs, masks)
        out_logits = self.out_vocab_logits(pooled, class_embeds)
        valid = self.valid_masks(inputs, masks) if self.ensemble_valid_mask \
            else None
        seen = seen_class_mask(class_embeds.vocabulary, self.seen_names)
        return geometric_ensemble(in_logits, out_logits, seen, self.alpha,
                                  self.beta, valid)

    def final_sets(self, inputs, class_embeds) -> Tuple[Tensor, Tensor]:
        """The final mask logits and class logits (ensembled if enabled).

        Only the last decoder layer's sets are computed (``last_only``), the
        earlier layers' serve the training losses alone. Both are float32,
        also when the head runs in bf16 (cast path): the sigmoid, softmax,
        resizes and the class product after the head are float32.
        """
        masks, logits = self.forward_sets(inputs, class_embeds, last_only=True)
        masks, cls = masks[-1].float(), logits[-1]
        if self.ensemble:
            cls = self.ensemble_logits(inputs, masks, cls, class_embeds)
        return masks, cls

    def forward(self, inputs: Sequence[Tensor],
                class_embeds: ClassEmbeddings) -> Tensor:
        """Per-class scores (B, C, H/4, W/4)."""
        masks, cls = self.final_sets(inputs, class_embeds)
        return semantic_inference(masks, cls)

    def predict(self, inputs: Sequence[Tensor], class_embeds: ClassEmbeddings,
                batch_img_metas: List[dict], test_cfg) -> Tensor:
        """Scores at the (padded) input size.

        ``mask_upsample='logits'``: the mask logits are upsampled to the padded
        input before the sigmoid (official ``FCCLIP.forward``); else the
        1/4-scale scores are resized (mmseg's ``predict_by_feat``).
        """
        if self.mask_upsample == 'scores':
            return super().predict(inputs, class_embeds, batch_img_metas, test_cfg)
        masks, cls = self.final_sets(inputs, class_embeds)
        return semantic_inference(masks, cls, size=self.predict_size(batch_img_metas))

    @property
    def has_low_res_predict(self) -> bool:
        """Only ``mask_upsample='scores'`` predicts by resizing class maps."""
        return self.mask_upsample == 'scores'
