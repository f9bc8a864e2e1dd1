"""SAN: Side Adapter Network (Xu et al., CVPR 2023) on a frozen open_clip ViT.

* :class:`SideAdapter` - a light ViT on the full-resolution image with
  ``Q`` learnable query tokens, fused with the shallow CLIP features; it
  predicts mask proposals ``M = V_mask Q_mask^T`` and attention biases
  ``B = V_attn Q_attn^T`` (paper Eq. 1-2, Sec. 3.2-3.3).
* :class:`SANRecognizer` - CLIP's deep blocks, where ``Q`` [SLS] tokens
  (copies of the class token) attend to the patch tokens with the biases
  ``B`` added to their attention logits and do not influence the patch
  tokens, so CLIP's own features are unchanged (paper Eq. 3, Fig. 4).
* :class:`SANHead` - ties both together; each [SLS] token, projected to
  CLIP's joint space, is classified against the vocabulary and a learned
  background embedding; masks and classes are combined by
  :func:`~mmovss.models.utils.semantic_inference`.

Parity: with the same weights (``tools/model_converters/
san_mmseg_to_mmovss.py``) the logits equal those of mmseg 1.2.2's
``SideAdapterCLIPHead``. mmseg runs the [SLS] tokens together with all
tokens under a full attention mask with -100 entries; here the [SLS]
attention is computed only over what it may see (itself and the patch
tokens), which changes the result by terms of relative size ``e^-100``
and saves the (Q + 1 + L)^2 attention (Q queries, L patches).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmengine.model.weight_init import caffe2_xavier_init, trunc_normal_
from mmseg.models.backbones.vit import TransformerEncoderLayer
from mmseg.models.utils import MLP, LayerNorm2d, PatchEmbed
from mmseg.registry import MODELS
from mmseg.utils import ConfigType

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.mask_classification import open_vocab_class_logits, semantic_inference
from ..utils.open_clip_weights import build_open_clip
from .mask_classification_head import MaskClassificationHead

__all__ = ['SideAdapter', 'SANRecognizer', 'SANHead']


class SideAdapterDecoder(nn.Module):
    """Mask proposals and attention biases from adapter tokens (Eq. 1-2).

    ``M = pix_mlp(V) . query_mlp(Q)`` and, per CLIP layer ``l`` and head
    ``n``, ``B_{l,n} = s * bias_mlp(V)_{l,n} . query_mlp(Q) + b`` (``s``,
    ``b``: a learned 1x1 rescaling when ``rescale_bias``).
    """

    def __init__(self, in_channels: int, num_heads: int, num_layers: int,
                 embed_channels: int = 256, mlp_channels: int = 256,
                 num_mlp: int = 3, rescale_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.num_layers = num_layers
        conv1x1 = lambda i, o: nn.Conv2d(i, o, kernel_size=1)  # noqa: E731
        self.query_mlp = MLP(in_channels, mlp_channels, embed_channels,
                             num_mlp)
        self.pixel_mlp = MLP(in_channels, mlp_channels, embed_channels,
                             num_mlp, affine_func=conv1x1)
        self.bias_mlp = MLP(in_channels, mlp_channels,
                            embed_channels * num_heads * num_layers, num_mlp,
                            affine_func=conv1x1)
        self.bias_scaling = nn.Linear(1, 1) if rescale_bias else None

    def forward(self, query: Tensor, feats: Tensor
                ) -> Tuple[Tensor, List[Tensor]]:
        """(B, Q, C) queries, (B, C, h, w) features -> masks, biases.

        Returns:
            tuple: (B, Q, h, w) mask logits and ``num_layers`` biases of
            shape (B, num_heads, Q, h, w).
        """
        query = self.query_mlp(query)
        masks = torch.einsum('bqc,bchw->bqhw', query, self.pixel_mlp(feats))
        b, _, h, w = feats.shape
        keys = self.bias_mlp(feats).reshape(b, self.num_layers,
                                            self.num_heads, -1, h, w)
        bias = torch.einsum('bqc,blnchw->blnqhw', query, keys)
        if self.bias_scaling is not None:
            bias = self.bias_scaling(bias[..., None])[..., 0]
        return masks, list(bias.unbind(dim=1))


class SideAdapter(nn.Module):
    """SAN's side-adapter ViT (paper Sec. 3.2, Fig. 3).

    Args:
        clip_channels (int): Width of the CLIP features fused in.
        embed_dims (int): Adapter width (240).
        patch_size (int): Adapter patch size (16).
        num_queries (int): Query tokens = mask proposals (100).
        num_layers (int): Adapter blocks (8).
        num_heads (int): Adapter attention heads (6).
        mlp_ratio (int): Adapter MLP ratio (4).
        fusion_index (Sequence[int]): After which adapter block (0: before
            the first) the i-th CLIP feature is added (``(0, 1, 2, 3)``).
        pretrain_grid (int): Grid of the learned position embedding (40 for
            640 / 16); resized bicubically to other grids.
        num_bias_heads (int): Heads of the recognising CLIP blocks.
        num_bias_layers (int): Different biases (1: shared by all deep
            blocks).
        decoder (dict): :class:`SideAdapterDecoder` sizes.
        norm_eps (float): LayerNorm epsilon of the adapter blocks.
        pos_embed_resize (str): When the position embedding is resized to
            the patch grid: ``'grid'`` (the default) whenever the grid is
            not ``pretrain_grid`` squared; ``'tokens'`` only when the number
            of patches differs, as the official SAN
            (``RegionwiseSideAdapterNetwork.forward_features``: a 20 x 80
            grid then reads the 40 x 40 embedding in raster order).
    """

    def __init__(self,
                 clip_channels: int,
                 embed_dims: int = 240,
                 patch_size: int = 16,
                 num_queries: int = 100,
                 num_layers: int = 8,
                 num_heads: int = 6,
                 mlp_ratio: int = 4,
                 fusion_index: Sequence[int] = (0, 1, 2, 3),
                 pretrain_grid: int = 40,
                 num_bias_heads: int = 12,
                 num_bias_layers: int = 1,
                 decoder: Optional[dict] = None,
                 norm_eps: float = 1e-6,
                 pos_embed_resize: str = 'grid'):
        super().__init__()
        if pos_embed_resize not in ('grid', 'tokens'):
            raise ValueError(f"pos_embed_resize must be 'grid' or 'tokens', got "
                             f'{pos_embed_resize!r}.')
        self.pos_embed_resize = pos_embed_resize
        if list(fusion_index) != sorted(set(fusion_index)) or \
                not all(0 <= i <= num_layers for i in fusion_index):
            raise ValueError(f'fusion_index must increase within [0, '
                             f'{num_layers}], got {tuple(fusion_index)}.')
        self.fusion_index = tuple(fusion_index)
        self.num_queries = num_queries
        self.patch_embed = PatchEmbed(
            in_channels=3, embed_dims=embed_dims, kernel_size=patch_size,
            stride=patch_size, padding=0, bias=True, norm_cfg=None)
        self.pretrain_grid = pretrain_grid
        self.pos_embed = nn.Parameter(
            torch.zeros(1, pretrain_grid * pretrain_grid, embed_dims))
        self.query_pos_embed = nn.Parameter(
            torch.zeros(1, num_queries, embed_dims))
        self.query_embed = nn.Parameter(torch.zeros(1, num_queries,
                                                    embed_dims))
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                embed_dims=embed_dims, num_heads=num_heads,
                feedforward_channels=mlp_ratio * embed_dims,
                norm_cfg=dict(type='LN', eps=norm_eps))
            for _ in range(num_layers))
        self.clip_fusions = nn.ModuleList(
            nn.Sequential(LayerNorm2d(clip_channels),
                          nn.Conv2d(clip_channels, embed_dims, 1))
            for _ in self.fusion_index)
        self.decoder = SideAdapterDecoder(
            embed_dims, num_bias_heads, num_bias_layers, **(decoder or {}))

    def init_weights(self):
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.query_embed, std=0.02)
        nn.init.normal_(self.query_pos_embed, std=0.02)
        for fusion in self.clip_fusions:
            caffe2_xavier_init(fusion[1])

    def position_embedding(self, grid_hw: Tuple[int, int]) -> Tensor:
        """Query and patch position embeddings (1, Q + h*w, C)."""
        pos = self.pos_embed
        g = self.pretrain_grid
        resize = grid_hw[0] * grid_hw[1] != g * g \
            if self.pos_embed_resize == 'tokens' else tuple(grid_hw) != (g, g)
        if resize:
            pos = pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
            pos = F.interpolate(pos, size=tuple(grid_hw), mode='bicubic',
                                align_corners=False)
            pos = pos.flatten(2).transpose(1, 2)
        return torch.cat([self.query_pos_embed, pos], dim=1)

    def fuse(self, j: int, x: Tensor, clip_map: Tensor,
             grid_hw: Tuple[int, int]) -> Tensor:
        """Adds the j-th projected CLIP map to the patch tokens."""
        fused = F.interpolate(self.clip_fusions[j](clip_map),
                              size=tuple(grid_hw), mode='bilinear',
                              align_corners=False)
        fused = fused.flatten(2).transpose(1, 2)
        q = self.num_queries
        return torch.cat([x[:, :q], x[:, q:] + fused], dim=1)

    def forward(self, image: Tensor, clip_maps: Sequence[Tensor],
                output_layers: Sequence[int] = ()
                ) -> Tuple[List[Tensor], List[List[Tensor]]]:
        """Mask proposals and attention biases.

        Args:
            image (Tensor): (B, 3, H, W) full-resolution image.
            clip_maps (Sequence[Tensor]): One CLIP map per fusion index.
            output_layers (Sequence[int]): Adapter blocks (1-based) whose
                predictions are also returned (deep supervision); the last
                block's always are, last.

        Returns:
            tuple: Lists of mask logits (B, Q, h, w) and of bias lists.
        """
        if len(clip_maps) != len(self.fusion_index):
            raise ValueError(
                f'SideAdapter: {len(self.fusion_index)} fusion indices but '
                f'{len(clip_maps)} CLIP feature maps; out_origin/out_indices '
                f'of the backbone must give one map per fusion index.')
        x, grid_hw = self.patch_embed(image)
        pos = self.position_embedding(grid_hw).expand(x.shape[0], -1, -1)
        x = torch.cat([self.query_embed.expand(x.shape[0], -1, -1), x], 1)
        x = x + pos
        fusion_at = {idx: j for j, idx in enumerate(self.fusion_index)}
        if 0 in fusion_at:
            x = self.fuse(fusion_at[0], x, clip_maps[fusion_at[0]], grid_hw)
        q = self.num_queries
        masks, biases = [], []
        last = len(self.layers)
        for i, layer in enumerate(self.layers, start=1):
            x = encoder_layer_sdpa(layer, x)
            if i in fusion_at:
                x = self.fuse(fusion_at[i], x, clip_maps[fusion_at[i]],
                              grid_hw)
            if i in output_layers or i == last:
                feats = x[:, q:].transpose(1, 2).reshape(
                    x.shape[0], -1, grid_hw[0], grid_hw[1])
                mask, bias = self.decoder(x[:, :q], feats)
                masks.append(mask)
                biases.append(bias)
            if i < last:
                x = x + pos
        return masks, biases


class SANRecognizer(nn.Module):
    """CLIP's deep blocks recognising masks through [SLS] tokens (Eq. 3).

    Each of the ``Q`` [SLS] tokens starts as the class token; in every
    block it attends to itself and to the patch tokens, with the bias
    ``B_q`` (max-pooled to the CLIP grid) added to its attention logits.
    The class and patch tokens never attend to [SLS] tokens, so they follow
    CLIP's own computation. The [SLS] outputs go through ``ln_post`` and
    ``proj`` into the joint space and are L2-normalised.

    Args:
        clip (dict): :func:`build_open_clip` arguments (``model_name``,
            ``pretrained``, ``model_cfg``, ``quick_gelu``).
        start_block (int): The first deep block (the backbone keeps
            ``start_block`` blocks).
        frozen (bool): Freeze the CLIP weights (SAN does).
    """

    def __init__(self, clip: dict, start_block: int, frozen: bool = True):
        super().__init__()
        model, _ = build_open_clip(**clip)
        visual = model.visual
        blocks = visual.transformer.resblocks
        if not 0 < start_block < len(blocks):
            raise ValueError(f'SANRecognizer: start_block={start_block} must '
                             f'leave deep blocks of the {len(blocks)}-block '
                             f'ViT.')
        self.blocks = nn.ModuleList(list(blocks)[start_block:])
        self.ln_post = visual.ln_post
        self.proj = visual.proj
        self.num_heads = self.blocks[0].attn.num_heads
        self.width = visual.conv1.out_channels
        self.embed_dim = visual.proj.shape[1]
        del model
        if frozen:
            self.requires_grad_(False)

    def format_bias(self, bias: Tensor, grid_hw: Tuple[int, int]) -> Tensor:
        """(B, heads or 1, Q, h', w') -> (B, heads, Q, h*w), max-pooled."""
        b, n, q, h, w = bias.shape
        if n not in (1, self.num_heads):
            raise ValueError(f'Attention bias has {n} heads; the CLIP blocks '
                             f'have {self.num_heads}.')
        bias = F.adaptive_max_pool2d(bias.reshape(b, n * q, h, w),
                                     output_size=tuple(grid_hw))
        bias = bias.reshape(b, n, q, -1)
        return bias.expand(-1, self.num_heads, -1, -1)

    def block(self, block: nn.Module, x: Tensor, sls: Tensor, bias: Tensor,
              need_x: bool = True) -> Tuple[Tensor, Tensor]:
        """One CLIP block on image tokens ``x`` (class token first) and
        [SLS] tokens ``sls``; ``need_x=False`` skips the image-token output
        (the last block)."""
        attn = block.attn
        heads = self.num_heads
        b, t, c = x.shape
        d = c // heads

        def qkv_of(tokens):
            qkv = F.linear(block.ln_1(tokens), attn.in_proj_weight,
                           attn.in_proj_bias)
            return qkv.reshape(b, tokens.shape[1], 3, heads,
                               d).permute(2, 0, 3, 1, 4)

        def merge(out):  # (B, heads, N, d) -> out_proj -> (B, N, C)
            out = out.transpose(1, 2).reshape(b, out.shape[2], c)
            return block.ls_1(F.linear(out, attn.out_proj.weight,
                                       attn.out_proj.bias))

        q, k, v = qkv_of(x)
        q_s, k_s, v_s = qkv_of(sls)
        k_p, v_p = k[:, :, 1:], v[:, :, 1:]  # patches; the class token unseen
        scale = d**-0.5
        # [SLS] token i attends to itself and to the patches:
        # softmax_j([q_i.k_i s, q_i.k_p s + bias_ip]) [v_i, v_p], computed
        # by SDPA over the keys [k_sls, k_p] with the other [SLS] keys
        # masked (-inf off the diagonal)
        num_sls = sls.shape[1]
        own = torch.full((num_sls, num_sls), float('-inf'), dtype=q_s.dtype,
                         device=q_s.device).fill_diagonal_(0)
        mask = torch.cat([own.expand(b, heads, -1, -1), bias.to(q_s.dtype)],
                         dim=-1)
        out = F.scaled_dot_product_attention(
            q_s, torch.cat([k_s, k_p], dim=2), torch.cat([v_s, v_p], dim=2),
            attn_mask=mask, scale=scale)
        sls = sls + merge(out)
        sls = sls + block.ls_2(block.mlp(block.ln_2(sls)))
        if need_x:
            x = x + merge(F.scaled_dot_product_attention(q, k, v))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        return x, sls

    def forward(self, biases: Sequence[Tensor], patch_map: Tensor,
                cls_token: Tensor) -> Tensor:
        """Joint-space embeddings of the mask proposals.

        Args:
            biases (Sequence[Tensor]): One (B, heads, Q, h', w') bias per
                deep block, or one shared by all.
            patch_map (Tensor): (B, width, h, w) tokens entering the deep
                blocks.
            cls_token (Tensor): (B, width) class token entering them.

        Returns:
            Tensor: (B, Q, embed_dim) unit-norm embeddings.
        """
        if len(biases) not in (1, len(self.blocks)):
            raise ValueError(f'{len(biases)} attention biases for '
                             f'{len(self.blocks)} deep CLIP blocks; give one '
                             f'per block or one shared.')
        grid_hw = tuple(patch_map.shape[-2:])
        biases = [self.format_bias(b, grid_hw) for b in biases]
        if len(biases) == 1:
            biases = biases * len(self.blocks)
        x = torch.cat([cls_token[:, None], patch_map.flatten(2).transpose(1,
                                                                          2)],
                      dim=1)
        sls = cls_token[:, None].expand(-1, biases[0].shape[2], -1)
        last = len(self.blocks) - 1
        for i, (block, bias) in enumerate(zip(self.blocks, biases)):
            x, sls = self.block(block, x, sls, bias.to(x.dtype), i < last)
        sls = self.ln_post(sls) @ self.proj
        return F.normalize(sls, dim=-1)


def encoder_layer_sdpa(layer: TransformerEncoderLayer, x: Tensor) -> Tensor:
    """``layer(x)`` of an mmseg ``TransformerEncoderLayer`` (pre-LN, batch first), in
    inference with the attention through ``F.scaled_dot_product_attention``.

    mmcv's ``MultiheadAttention`` calls ``nn.MultiheadAttention`` with
    ``need_weights=True``, which on CPU materialises the (B, heads, N, N)
    softmax and averages it over the heads (unused here); SDPA gives the same
    output (to float rounding) without them. In training, or for any other
    attention configuration, the layer runs its own ``forward``.
    """
    wrapper = getattr(layer, 'attn', None)
    mha = getattr(wrapper, 'attn', None)
    if (layer.training or getattr(layer, 'with_cp', False)
            or type(mha) is not nn.MultiheadAttention or not mha._qkv_same_embed_dim
            or mha.in_proj_weight is None or mha.bias_k is not None or mha.add_zero_attn
            or not getattr(wrapper, 'batch_first', False)):
        return layer(x)
    b, n, c = x.shape
    heads = mha.num_heads
    qkv = F.linear(layer.norm1(x), mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.view(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)
    out = mha.out_proj(out.transpose(1, 2).reshape(b, n, c))
    x = x + wrapper.dropout_layer(wrapper.proj_drop(out))  # identities in eval
    return layer.ffn(layer.norm2(x), identity=x)


@MODELS.register_module()
class SANHead(MaskClassificationHead):
    """Side Adapter Network head (Xu et al., CVPR 2023).

    Inputs are the :class:`~mmovss.models.backbones.SANCLIPViT` outputs:
    ``(image, fusion maps..., class token)``; the last fusion map and the
    class token start the recognition.

    Args:
        clip (dict): open_clip model of the recognizer, the same as the
            backbone's: ``model_name``/``model_cfg``, ``pretrained``,
            ``quick_gelu``.
        start_block (int): Number of shallow CLIP blocks in the backbone
            (ViT-B/16: 9, ViT-L/14: 18).
        side_adapter (dict): :class:`SideAdapter` arguments other than
            ``clip_channels`` and ``num_bias_heads`` (taken from CLIP).
        deep_supervision_idxs (Sequence[int]): Adapter blocks (1-based)
            whose predictions are also supervised in training (SAN: (7,)).
        logit_scale (float, optional): Temperature of the class logits;
            None: CLIP's (``ClassEmbeddings.logit_scale``).
        criterion (dict): :class:`MaskClassificationLoss` config.
        mask_upsample (str): Final resize order at inference. ``'logits'``
            (default, as mmseg's SAN): the mask logits are upsampled to the
            padded input before the sigmoid and the class scores are
            cropped and resized to the original image by the segmentor.
            ``'original'``: the official SAN with
            ``SEM_SEG_POSTPROCESS_BEFORE_INFERENCE`` (``san/model/san.py``,
            ``SAN.forward``; detectron2 ``sem_seg_postprocess``): the mask
            logits are cropped and resized to the ORIGINAL image size before
            the sigmoid and the class product; needs a
            ``MaskClassificationEncoderDecoder`` segmentor (whole-image
            inference).
        **kwargs: :class:`OpenVocabDecodeHead` arguments.
    """

    #: bf16 with weights cast once (``test_cfg.precision_mode='cast'``),
    #: checked against float32 (tests/test_low_precision_heads.py): the side
    #: adapter and the recognising CLIP blocks run in bf16; kept float32 are
    #: the norms, the recognizer's ``ln_post`` and ``proj`` into the joint
    #: space (as every cast CLIP tower), the void embedding and the class
    #: embeddings, and the mask logits leave the head in float32.
    supports_low_precision_cast = True
    float32_parameters = ('void_embed', )
    float32_class_embeddings = True
    #: every width of SAN's head is its own CLIP's (``clip``), checked to be
    #: the backbone's CLIP before the model is built
    declares_widths = False

    def __init__(self,
                 clip: dict,
                 start_block: int,
                 side_adapter: Optional[dict] = None,
                 deep_supervision_idxs: Sequence[int] = (7, ),
                 logit_scale: Optional[float] = None,
                 criterion: dict = dict(type='MaskClassificationLoss'),
                 mask_upsample: str = 'logits',
                 **kwargs):
        if mask_upsample not in ('logits', 'original'):
            raise ValueError(f"SANHead: mask_upsample must be 'logits' or 'original', "
                             f'got {mask_upsample!r}.')
        side_adapter = dict(side_adapter or {})
        embed_dims = side_adapter.get('embed_dims', 240)
        kwargs.setdefault('in_channels', 3)
        kwargs.setdefault('channels', embed_dims)
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(criterion=criterion, **kwargs)
        self.recognizer = SANRecognizer(dict(clip), start_block)
        for key in ('clip_channels', 'num_bias_heads'):
            if key in side_adapter:
                raise ValueError(f'SANHead: side_adapter.{key} is set from the '
                                 f'CLIP model; remove it.')
        self.side_adapter = SideAdapter(
            clip_channels=self.recognizer.width,
            num_bias_heads=self.recognizer.num_heads, **side_adapter)
        self.void_embed = nn.Parameter(
            torch.zeros(1, self.recognizer.embed_dim))
        self.deep_supervision_idxs = tuple(deep_supervision_idxs)
        self.logit_scale = logit_scale
        self.mask_upsample = mask_upsample

    def init_weights(self):
        self.side_adapter.init_weights()
        nn.init.normal_(self.void_embed, std=self.void_embed.shape[1]**-0.5)

    def split_inputs(self, inputs: Sequence[Tensor]):
        """(image, fusion maps, last patch map, class token)."""
        num_maps = len(self.side_adapter.fusion_index)
        if len(inputs) != num_maps + 2:
            raise ValueError(
                f'SANHead expects (image, {num_maps} CLIP maps, class token) '
                f'from SANCLIPViT, got {len(inputs)} tensors.')
        return inputs[0], list(inputs[1:-1]), inputs[-2], inputs[-1]

    def forward_sets(self, inputs: Sequence[Tensor],
                     class_embeds: ClassEmbeddings,
                     output_layers: Sequence[int] = ()
                     ) -> Tuple[List[Tensor], List[Tensor]]:
        """Mask logits (B, Q, h, w) and class logits (B, Q, C + 1) per set."""
        image, maps, patch_map, cls_token = self.split_inputs(inputs)
        masks, biases = self.side_adapter(image, maps, output_layers)
        class_logits = []
        for bias in biases:
            embeds = self.recognizer(bias, patch_map, cls_token)
            class_logits.append(
                open_vocab_class_logits(embeds, class_embeds, self.void_embed,
                                        self.logit_scale))
        return masks, class_logits

    def final_sets(self, inputs: Sequence[Tensor], class_embeds: ClassEmbeddings
                   ) -> Tuple[Tensor, Tensor]:
        """The last adapter block's mask logits (B, Q, h, w) and class logits
        (B, Q, C + 1) (what ``MaskClassificationEncoderDecoder`` resizes)."""
        masks, class_logits = self.forward_sets(inputs, class_embeds)
        return masks[-1].float(), class_logits[-1]

    def forward(self, inputs: Sequence[Tensor],
                class_embeds: ClassEmbeddings) -> Tensor:
        """Per-class scores (B, C, H, W) at the input image size."""
        masks, class_logits = self.final_sets(inputs, class_embeds)
        return semantic_inference(masks, class_logits, size=inputs[0].shape[-2:])

    def predict(self, inputs: Sequence[Tensor], class_embeds: ClassEmbeddings,
                batch_img_metas: List[dict], test_cfg: ConfigType) -> Tensor:
        """Scores at the input (padded/crop) size, as mmseg's SAN."""
        return self.forward(inputs, class_embeds)

    def training_sets(self, inputs: Sequence[Tensor],
                      class_embeds: ClassEmbeddings
                      ) -> Tuple[List[Tensor], List[Tensor], List[str]]:
        """The final set and those of ``deep_supervision_idxs``, the latter
        named ``d{i}.`` after their adapter block ``i``."""
        masks, class_logits = self.forward_sets(inputs, class_embeds,
                                                self.deep_supervision_idxs)
        names = [f'd{i}.' for i in self.deep_supervision_idxs
                 if i != len(self.side_adapter.layers)]
        return masks, class_logits, names
