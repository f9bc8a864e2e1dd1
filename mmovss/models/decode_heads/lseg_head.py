"""LSeg head: DPT decoder to per-pixel embeddings, matched to class text."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmcv.cnn import ConvModule, build_activation_layer
from mmseg.models.decode_heads.dpt_head import FeatureFusionBlock, ReassembleBlocks
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import ConfigType

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.width_check import DeclaredWidth
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['LSegHead', 'LSegSpatialRegularization']

LSEG_REG_BLOCKS = ('bottleneck', 'depthwise')
LSEG_READOUTS = ('ignore', 'add', 'project')
LSEG_LOGITS_DTYPES = {'float32': torch.float32, 'float16': torch.float16}


class LSegSpatialRegularization(nn.Module):
    """LSeg's spatial regularisation blocks on the class-logit map.

    Li et al., "Language-driven Semantic Segmentation", ICLR 2022, Sec. 3
    ("Spatial regularization"). One 3x3 kernel ``K`` shared by every class
    channel (so any number of classes works), applied ``depth`` times::

        depthwise:  F <- act(K * F)
        bottleneck: F <- act(K * F + max_n F_n)     (max over classes)

    The last block has no activation.

    Args:
        kind (str): ``'bottleneck'`` or ``'depthwise'``.
        depth (int): Number of blocks (>= 1). One kernel serves all blocks,
            as in LSeg's reference code.
        act_cfg (dict): Activation (LSeg: LeakyReLU).
    """

    def __init__(self, kind: str, depth: int,
                 act_cfg: dict = dict(type='LeakyReLU')):
        super().__init__()
        if kind not in LSEG_REG_BLOCKS:
            raise ValueError(f'LSeg spatial regularisation {kind!r}: use one '
                             f'of {LSEG_REG_BLOCKS} (or None for none).')
        if depth < 1:
            raise ValueError(f'LSeg spatial regularisation depth={depth}; use '
                             f'>= 1 (or reg_block=None for none).')
        self.kind = kind
        self.depth = depth
        self.kernel = nn.Conv2d(1, 1, 3, padding=1)
        self.map_chunk = 64
        self.act = build_activation_layer(act_cfg)

    def forward(self, logits: Tensor) -> Tensor:
        b, n, h, w = logits.shape
        for i in range(self.depth):
            out = self._convolve(logits.reshape(b * n, 1, h, w)).view(
                b, n, h, w)
            if self.kind == 'bottleneck':
                # in place on the fresh convolution output
                out += logits.amax(dim=1, keepdim=True)
            if i < self.depth - 1:
                out = self.act(out)
            logits = out
        return logits

    def _convolve(self, maps: Tensor) -> Tensor:
        """The shared 3x3 kernel on (M, 1, h, w) maps, ``map_chunk`` at once.

        One call on all maps would let the convolution's im2col buffer grow
        with the vocabulary (9 x the logits: 1.75 GB for ADE-847 at 240 x
        240); chunks give the same values with a bounded buffer.
        """
        if maps.shape[0] <= self.map_chunk:
            return self.kernel(maps)
        out = maps.new_empty(maps.shape)
        for i in range(0, maps.shape[0], self.map_chunk):
            out[i:i + self.map_chunk] = self.kernel(
                maps[i:i + self.map_chunk])
        return out


@MODELS.register_module()
class LSegHead(OpenVocabDecodeHead):
    """LSeg (Li et al., ICLR 2022) as an open-vocabulary decode head.

    A DPT decoder (Ranftl et al., ICCV 2021; mmseg's ``ReassembleBlocks``
    and ``FeatureFusionBlock``) turns four ViT layers into a per-pixel
    embedding ``I = g(x) in R^{H' x W' x D}`` (the fusion ends at 8x the
    patch grid: ``H' = H/2`` for patch 16), scored against the N text embeddings
    ``T`` (LSeg Eq. 1-2)::

        F_{ij n} = tau * <I_ij / |I_ij|, T_n>        (learnable tau)

    then spatial regularisation (:class:`LSegSpatialRegularization`) and a
    2x bilinear upsampling. Trained with per-pixel softmax cross-entropy.

    Args:
        in_channels (int): ViT width of the four selected layers.
        in_index (Sequence[int]): The four backbone outputs used (low to
            high level).
        embed_dim (int): Joint (text) embedding dimension D.
        channels (int): DPT feature channels (LSeg: 256).
        post_process_channels (Sequence[int]): Reassembled channels of the
            four levels (LSeg ViT-L: 256, 512, 1024, 1024).
        patch_size (int): ViT patch size.
        readout_type (str): DPT readout of the class token (Ranftl et al.,
            ICCV 2021, Sec. 3): ``'ignore'`` (drop it; works with backbones
            that return patch maps only, e.g. the CLIP towers), ``'add'``
            (add it to every patch token) or ``'project'`` (concatenate it
            and project back with Linear + GELU, one per level; the released
            LSeg model). ``'add'``/``'project'`` need a backbone returning
            ``[map, cls_token]`` pairs (:class:`TimmViT`).
        logit_scale (float): Initial ``tau`` (LSeg: 1 / 0.07).
        learn_logit_scale (bool): Train ``tau`` (in log space). The official
            code fixes it (``nn.Parameter(...).exp()`` is a plain tensor, not
            a registered parameter): False.
        logits_dtype (str): ``'float32'`` (default) or ``'float16'``: the
            official ``LSeg.forward`` (``modules/models/lseg_net.py``) scores
            ``(tau * I.half()) @ T.t()`` in half precision against the fp16
            text features of a CUDA ``clip.load`` and casts back to float;
            ``'float16'`` reproduces it operation by operation.
        reg_block (str, optional): ``'bottleneck'``, ``'depthwise'`` or None.
        reg_depth (int): Regularisation blocks.
        reg_act_cfg (dict): Their activation.
        **kwargs: :class:`OpenVocabDecodeHead` arguments (``norm_cfg`` is
            the DPT fusion norm; LSeg uses BN).
    """

    supports_low_precision_cast = True
    #: Kept float32 on the cast path (``low_precision.cast_tower``): the
    #: projection into the joint space, the spatial regularisation of the
    #: logits and the logit scale, so the pixel-text logits are float32; the
    #: DPT decoder runs in the low precision.
    float32_modules = ('to_embed', 'regularization')
    float32_parameters = ('log_logit_scale', )
    text_width_key = 'embed_dim'  # the pixel embeddings (to_embed)

    def __init__(self,
                 in_channels: int,
                 embed_dim: int,
                 in_index: Sequence[int] = (0, 1, 2, 3),
                 channels: int = 256,
                 post_process_channels: Sequence[int] = (96, 192, 384, 768),
                 patch_size: int = 16,
                 readout_type: str = 'ignore',
                 logit_scale: float = 1 / 0.07,
                 learn_logit_scale: bool = True,
                 logits_dtype: str = 'float32',
                 reg_block: Optional[str] = 'bottleneck',
                 reg_depth: int = 2,
                 reg_act_cfg: dict = dict(type='LeakyReLU'),
                 **kwargs):
        if len(in_index) != 4 or len(post_process_channels) != 4:
            raise ValueError(
                f'LSegHead: the DPT decoder needs 4 ViT layers; got in_index '
                f'{list(in_index)} and post_process_channels '
                f'{list(post_process_channels)}.')
        if readout_type not in LSEG_READOUTS:
            raise ValueError(
                f'LSegHead: readout_type={readout_type!r}; use one of '
                f'{LSEG_READOUTS}.')
        if logits_dtype not in LSEG_LOGITS_DTYPES:
            raise ValueError(
                f'LSegHead: logits_dtype={logits_dtype!r}; use one of '
                f'{tuple(LSEG_LOGITS_DTYPES)}.')
        kwargs.setdefault('dropout_ratio', 0.0)
        kwargs.setdefault('norm_cfg', dict(type='BN', requires_grad=True))
        super().__init__([in_channels] * 4, channels, in_index=list(in_index),
                         input_transform='multiple_select', **kwargs)
        self.embed_dim = embed_dim
        self.readout_type = readout_type
        self.logits_dtype = logits_dtype
        self.reassemble = ReassembleBlocks(in_channels,
                                           list(post_process_channels),
                                           readout_type, patch_size)
        self.convs = nn.ModuleList([
            ConvModule(c, channels, 3, padding=1, act_cfg=None, bias=False)
            for c in post_process_channels
        ])
        self.fusion_blocks = nn.ModuleList([
            FeatureFusionBlock(channels, dict(type='ReLU'), self.norm_cfg)
            for _ in range(4)
        ])
        self.fusion_blocks[0].res_conv_unit1 = None
        self.to_embed = nn.Conv2d(channels, embed_dim, 1)
        self.log_logit_scale = nn.Parameter(
            torch.tensor(math.log(logit_scale)),
            requires_grad=learn_logit_scale)
        self.regularization = LSegSpatialRegularization(
            reg_block, reg_depth, reg_act_cfg) if reg_block else None

    def input_widths(self) -> List[DeclaredWidth]:
        """``in_channels``: one number, the ViT width of the four inputs."""
        return [DeclaredWidth('in_channels', None, index, width)
                for index, width in zip(self.in_index, self.in_channels)]

    def pixel_embeddings(self, inputs: Tuple[Tensor]) -> Tensor:
        """The per-pixel embeddings ``I`` (B, D, 8h, 8w) for an (h, w) patch grid."""
        feats = self._transform_inputs(inputs)
        x = self.reassemble([self._with_cls_token(f) for f in feats])
        x = [conv(f) for conv, f in zip(self.convs, x)]
        out = self.fusion_blocks[0](x[-1])
        for i in range(1, len(self.fusion_blocks)):
            out = self.fusion_blocks[i](out, x[-(i + 1)])
        return self.to_embed(out)

    def _with_cls_token(self, feat) -> list:
        """A backbone output as DPT's ``[map, cls_token]`` pair."""
        if isinstance(feat, (list, tuple)):
            if len(feat) != 2:
                raise ValueError(
                    f'LSegHead: a backbone output pair must be [map, cls_token], '
                    f'got {len(feat)} tensors.')
            return list(feat)
        if self.readout_type != 'ignore':
            raise ValueError(
                f"LSegHead: readout_type={self.readout_type!r} needs the class "
                f"token, but the backbone returns patch maps only; use a "
                f"backbone that returns [map, cls_token] pairs (TimmViT with "
                f"output_cls_token=True) or readout_type='ignore'.")
        return [feat, None]

    def forward(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings
                ) -> Tensor:
        """Class logits after the final 2x upsampling, (B, N, 16h, 16w)."""
        return self.upsample(self.decoder_logits(inputs, class_embeds))

    def upsample(self, logits: Tensor) -> Tensor:
        """LSeg's final bilinear 2x upsampling of the decoder logits."""
        return resize(logits, scale_factor=2, mode='bilinear',
                      align_corners=self.align_corners)

    def predict_low_res(self, inputs: Tuple[Tensor],
                        class_embeds: ClassEmbeddings,
                        batch_img_metas: List[dict],
                        test_cfg: ConfigType) -> Tensor:
        """The logits before LSeg's final 2x upsampling, when exact.

        When twice their size is the size ``predict_by_feat`` resizes to
        (patch 16 and crop sides that are multiples of it), that upsampling
        is the same bilinear resize the segmentor applies a chunk of classes
        at a time, and the resize after it is the identity: these logits
        describe :meth:`predict` exactly with 4x fewer values (ADE-847 at a
        480 x 480 crop: 195 MB instead of 780 MB per window). Otherwise
        :meth:`forward`'s logits.

        The crops of the batch go through the decoder one at a time, so the
        temporaries of a large vocabulary (per-name logits, regularisation)
        exist for one crop only.
        """
        out = None
        batch = _batch_size(inputs)
        for i in range(batch):
            logits = self.decoder_logits(
                tuple([t[i:i + 1] for t in f] if isinstance(f, (list, tuple))
                      else f[i:i + 1] for f in inputs), class_embeds)
            h, w = logits.shape[-2:]
            if self.predict_size(batch_img_metas) != (2 * h, 2 * w):
                logits = self.upsample(logits)
            if out is None:  # filled in place (no second copy of the batch)
                out = logits.new_empty((batch, ) + logits.shape[1:])
            out[i] = logits[0]
        return out

    def decoder_logits(self, inputs: Tuple[Tensor],
                        class_embeds: ClassEmbeddings) -> Tensor:
        """Scaled cosine logits after spatial regularisation, (B, N, 8h, 8w)
        for an (h, w) patch grid (half the input size at patch 16).

        LSeg (Li et al., ICLR 2022), Sec. 3.1: ``F_ij,k = I_ij . T_k`` of the
        normalised pixel and text embeddings, times the logit scale.
        """
        pixels = self.pixel_embeddings(inputs)
        if class_embeds.embeds.shape[1] != self.embed_dim:
            raise ValueError(
                f'LSegHead: embed_dim={self.embed_dim} but class embeddings '
                f'have {class_embeds.embeds.shape[1]} channels; set embed_dim to '
                f'the text encoder\'s joint dimension.')
        if self.logits_dtype == 'float16':
            logits = self.official_half_logits(pixels, class_embeds.embeds)
        else:
            logits = self._float_logits(pixels, class_embeds.embeds)
        logits = class_embeds.reduce(logits, 1)
        if self.regularization is not None:
            logits = self.regularization(logits)
        return logits

    def official_half_logits(self, pixels: Tensor, text: Tensor) -> Tensor:
        """``tau * cos`` in half precision, as the official ``LSeg.forward``.

        ``modules/models/lseg_net.py``: the (B*H*W, D) pixel embeddings are
        normalised in float32, cast to half, multiplied by ``tau`` (Python
        evaluates ``tau * I.half() @ T.t()`` left to right) and matched to
        the half-precision text features; the product is cast to float.
        """
        b, c, h, w = pixels.shape
        x = pixels.permute(0, 2, 3, 1).reshape(-1, c)
        x = x / x.norm(dim=-1, keepdim=True)
        scale = self.log_logit_scale.exp()
        logits = scale * x.half() @ text.half().t()
        return logits.float().view(b, h, w, -1).permute(0, 3, 1, 2)

    def _float_logits(self, pixels: Tensor, text: Tensor) -> Tensor:
        """``tau * cos`` in float32, in the (B, N, h, w) layout directly."""
        embeds = F.normalize(pixels, dim=1)
        text = text.to(embeds)
        b, _, h, w = embeds.shape
        # (N, C) @ (B, C, hw): the logits in their final layout, no permuted
        # copies of the (B, N, h, w) tensor
        logits = torch.matmul(text, embeds.flatten(2)).view(b, -1, h, w)
        scale = self.log_logit_scale.exp()
        # in place in inference (one (names, H, W) tensor less)
        return logits * scale if torch.is_grad_enabled() else \
            logits.mul_(scale)


def _batch_size(inputs) -> int:
    """Batch size of backbone outputs (maps or ``[map, cls_token]`` pairs)."""
    first = inputs[0]
    return (first[0] if isinstance(first, (list, tuple)) else first).shape[0]
