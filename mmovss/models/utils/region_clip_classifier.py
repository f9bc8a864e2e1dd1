"""CLIP classification of masked image regions, with OVSeg's mask prompts.

The second stage of two-stage open-vocabulary segmentation, shared by the
heads of ZegFormer, OVSeg and SAM + CLIP and by OVSeg's mask prompt tuner:
every mask proposal is cut out of the image (bounding-box crop, pixels
outside the mask filled with a constant, resized to CLIP's input size) and
classified by the CLIP image encoder against the class-name embeddings
(ZegFormer, Ding et al., CVPR 2022, Sec. 3.4 "segment classification with
CLIP image features"; OVSeg, Liang et al., CVPR 2023, Sec. 3.1; SAM + CLIP).

OVSeg's *mask prompt tuning* (Liang et al., CVPR 2023, Sec. 3.3): in the
first ``mask_prompt_depth`` blocks of the frozen CLIP ViT, the tokens of
patches that lie completely outside the mask are replaced by learnable
prompt tokens ``P_l`` (one per block ``l`` and patch position) before the
block runs, so CLIP learns to ignore the blank fill instead of being changed
itself. With ``mask_prompt_depth=0`` this is plain CLIP.

Crops are taken with torchvision's ``roi_align`` (``aligned=True``) on the
image and on the mask separately and combined afterwards
(``crop * m + fill * (1 - m)``), so only one image copy is held in memory;
the reference implementations mask first and then crop, which differs only
in the bilinear mixing at the mask border.

Cost: one CLIP forward per proposal (100 for ZegFormer / OVSeg), so the
crops are encoded ``crop_batch_size`` at a time (the results equal one crop
per forward), empty masks are never encoded, callers may exclude more
proposals with ``keep`` (e.g. ``ZegFormerHead(skip_score_threshold=...)``),
the last CLIP block computes the class token's row only
(:func:`class_token_block`: the embedding reads nothing else), and in
inference the encoder runs in the segmentor's ``test_cfg.inference_dtype``:
with its weights cast once (``precision_mode='cast'``, the CLIP tower cast by
the segmentor: :mod:`~mmovss.models.utils.low_precision`) or under autocast
(residual stream, LayerNorms and the final projection float32); embeddings
are float32 either way.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import masks_to_boxes, roi_align

from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from .clip_attention import _sdpa_ready, clip_block, clip_mlp
from .mask_classification import open_vocab_class_logits
from .mixed_precision import check_inference_dtype, float32_region, inference_autocast

__all__ = ['RegionCLIPClassifier', 'mask_boxes', 'zegformer_mask_boxes', 'class_token_block']

MASK_FILLS = ('mean', 'zero')
CROP_STYLES = ('cropmask', 'crop', 'mask')
BOX_STYLES = ('exclusive', 'zegformer')


def zegformer_mask_boxes(masks: Tensor) -> Tensor:
    """ZegFormer's boxes of binary masks (``MaskFormer.forward`` of
    ``mask_former/mask_former_model.py``, github.com/dingjiansw101/ZegFormer).

    ``(x_min, y_min, x_max, y_max)`` with *inclusive* maxima (the index of
    the last row/column holding a mask pixel, found as the first maximum of
    the cumulative pixel count); a box of zero area - an empty mask, or one
    that spans a single row or column - becomes the whole image
    ``(0, 0, W, H)``.

    Args:
        masks (Tensor): (N, H, W) bool.

    Returns:
        Tensor: (N, 4) float boxes.
    """
    n, h, w = masks.shape

    def extent(counts: Tensor) -> Tuple[Tensor, Tensor]:
        cum = counts.cumsum(dim=1).float()
        last = cum.argmax(dim=1)
        cum[cum == 0] = float('inf')
        return cum.argmin(dim=1), last

    x_min, x_max = extent(masks.sum(dim=1))
    y_min, y_max = extent(masks.sum(dim=2))
    boxes = torch.stack([x_min, y_min, x_max, y_max], dim=1).float()
    flat = (y_max - y_min) * (x_max - x_min) == 0
    boxes[flat] = boxes.new_tensor([0, 0, w, h])
    return boxes


def mask_boxes(masks: Tensor, expand_ratio: float = 1.0) -> Tensor:
    """Bounding boxes ``(x1, y1, x2, y2)`` of binary masks, pixel edges.

    ``x2``/``y2`` are exclusive (one past the last pixel), so a one-pixel
    mask at ``(y, x)`` gives ``(x, y, x + 1, y + 1)``. With ``expand_ratio``
    > 1 the box grows about its centre (OVSeg's ``mask_expand_ratio``) and is
    clipped to the image. Empty masks get the whole image.

    Args:
        masks (Tensor): (N, H, W) bool.
        expand_ratio (float): Box scale factor (>= 1).

    Returns:
        Tensor: (N, 4) float boxes.
    """
    n, h, w = masks.shape
    boxes = masks.new_zeros((n, 4), dtype=torch.float32)
    boxes[:, 2], boxes[:, 3] = w, h
    nonempty = masks.flatten(1).any(1)
    if nonempty.any():
        found = masks_to_boxes(masks[nonempty]).float()
        found[:, 2:] += 1
        boxes[nonempty] = found
    if expand_ratio != 1.0:
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        half = (boxes[:, 2:] - boxes[:, :2]) / 2 * expand_ratio
        boxes = torch.cat([centre - half, centre + half], dim=1)
        limit = boxes.new_tensor([w, h, w, h])
        boxes = torch.minimum(boxes.clamp(min=0), limit)
    return boxes


def class_token_block(block: nn.Module, x: Tensor) -> Tensor:
    """The class token's row of :func:`clip_block` ``(block, x)``, (B, 1, C).

    The last block of a CLIP image tower whose class token alone is read
    (the region embedding, ``ln_post(x[:, 0]) @ proj``): the query, attention
    output, residual and MLP of the class token only, keys and values of
    every token - the same values as the whole block's first row (to float
    rounding), at about a sixth of its cost. ``block`` must pass
    ``clip_attention._sdpa_ready``.
    """
    attn = block.attn
    b, n, c = x.shape
    heads = attn.num_heads
    y = block.ln_1(x)
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(y[:, :1], weight[:c], None if bias is None else bias[:c])
    kv = F.linear(y, weight[c:], None if bias is None else bias[c:])
    q = q.view(b, 1, heads, c // heads).transpose(1, 2)
    k, v = kv.view(b, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v)
    out = attn.out_proj(out.transpose(1, 2).reshape(b, 1, c))
    x = x[:, :1] + block.ls_1(out)
    return x + block.ls_2(clip_mlp(block.mlp, block.ln_2(x)))


@MODELS.register_module()
class RegionCLIPClassifier(nn.Module):
    """Classifies masked image regions with a (mask-adapted) CLIP ViT.

    Args:
        clip (dict): An ``OpenCLIPViT`` config (frozen by default); only its
            class token is used.
        crop_size (int): CLIP input size of the crops (224).
        mask_threshold (float): Probability threshold binarising the masks.
        mask_fill (str): Fill outside the mask: ``'mean'`` (CLIP's mean
            colour, OVSeg and ZegFormer) or ``'zero'`` (black).
        crop_style (str): ``'cropmask'`` (box crop with the outside filled),
            ``'crop'`` (box crop, no fill) or ``'mask'`` (whole image, filled
            outside the mask) - ZegFormer's ``CLIP_CLS_STYLE`` options.
        expand_ratio (float): Box enlargement (OVSeg's mask_expand_ratio).
        mask_prompt_depth (int): Blocks with learnable mask prompts (OVSeg:
            3); 0 disables mask prompts.
        clip_mean (Sequence[float], optional): CLIP's normalisation mean in
            [0, 255] pixel values; default OpenAI CLIP's.
        clip_std (Sequence[float], optional): Same for the std.
        crop_batch_size (int): Crops encoded per CLIP forward; any value
            gives the same embeddings (within float rounding). The default 8
            keeps a ViT-B/16 MLP activation (8 x 197 x 3072 float32) under
            glibc's 32 MiB mmap threshold: larger buffers are mapped afresh
            and page-faulted on every call (OVSeg, 100 crops, float32: 64 per
            forward spent 3.8 s of system time per image, 8 per forward
            0.3 s; docs/benchmarks.md).
        box_style (str): ``'exclusive'`` (:func:`mask_boxes`) or
            ``'zegformer'`` (:func:`zegformer_mask_boxes`: inclusive maxima,
            zero-area boxes become the image; ``expand_ratio`` unused).
        mask_before_crop (bool): With ``crop_style='cropmask'``, fill the
            image outside the mask first and crop the filled image (ZegFormer's
            order, bilinear mixing at the mask border as the official code);
            False crops image and mask separately (one image copy in memory).
        classify_empty (bool): Also encode empty masks (their crop is the
            whole image, filled), as ZegFormer's code does for every query;
            False (default) leaves them unclassified (``valid`` False).
        crop_resize (str): ``'roi_align'`` (default: crop and resize in one
            bilinear ``roi_align``) or ``'slice'``: OVSeg's ``crop_with_mask``
            + ``_preprocess_image`` (``open_vocab_seg/modeling/clip_adapter``):
            the integer box slice of the image, filled outside the binary
            mask, resized bicubically to ``crop_size``, the mask by nearest.
        logit_scale (float, optional): Fixed scale of the CLIP logits (OVSeg's
            ``get_sim_logits(temperature=100)``); None: CLIP's own.
        mask_prompt_at_embed (bool): The first mask prompt replaces the patch
            embeddings before the class token, position embedding and
            ``ln_pre`` (OVSeg's ``VisionTransformer.forward`` of its
            ``third_party/CLIP``), the others the input of blocks 1, 2, ...;
            False (default): prompt ``l`` replaces the input of block ``l``.

    Attributes:
        inference_dtype (str): Precision of the crop forwards in inference
            (``'fp32'``, ``'bf16'``, ``'fp16'``); set from the segmentor's
            ``test_cfg.inference_dtype`` by
            :class:`~mmovss.models.segmentors.TwoStageEncoderDecoder`.
        precision_mode (str): ``'autocast'`` (the crop forwards run under
            autocast of ``inference_dtype``) or ``'cast'`` (the segmentor
            cast the CLIP tower's weights: no autocast); set with
            ``inference_dtype``.
    """

    def __init__(self,
                 clip: dict,
                 crop_size: int = 224,
                 mask_threshold: float = 0.5,
                 mask_fill: str = 'mean',
                 crop_style: str = 'cropmask',
                 expand_ratio: float = 1.0,
                 mask_prompt_depth: int = 0,
                 clip_mean: Optional[Sequence[float]] = None,
                 clip_std: Optional[Sequence[float]] = None,
                 crop_batch_size: int = 8,
                 box_style: str = 'exclusive',
                 mask_before_crop: bool = False,
                 classify_empty: bool = False,
                 crop_resize: str = 'roi_align',
                 logit_scale: Optional[float] = None,
                 mask_prompt_at_embed: bool = False):
        super().__init__()
        if mask_fill not in MASK_FILLS:
            raise ValueError(f'RegionCLIPClassifier: mask_fill={mask_fill!r}, '
                             f'use one of {MASK_FILLS}.')
        if crop_style not in CROP_STYLES:
            raise ValueError(f'RegionCLIPClassifier: crop_style={crop_style!r},'
                             f' use one of {CROP_STYLES}.')
        if expand_ratio < 1.0 or crop_batch_size < 1 or crop_size < 1:
            raise ValueError('RegionCLIPClassifier: expand_ratio must be >= 1 '
                             'and crop_size, crop_batch_size >= 1.')
        self.clip = MODELS.build(clip)
        if not hasattr(self.clip, 'embed') or \
                not hasattr(self.clip, 'visual'):
            raise TypeError(f'RegionCLIPClassifier needs an OpenCLIPViT '
                            f'config, got {type(self.clip).__name__}.')
        import open_clip
        mean = clip_mean or [255 * c for c in open_clip.OPENAI_DATASET_MEAN]
        std = clip_std or [255 * c for c in open_clip.OPENAI_DATASET_STD]
        self.register_buffer('clip_mean', torch.tensor(mean).view(3, 1, 1),
                             persistent=False)
        self.register_buffer('clip_std', torch.tensor(std).view(3, 1, 1),
                             persistent=False)
        self.crop_size = crop_size
        self.mask_threshold = mask_threshold
        self.mask_fill = mask_fill
        self.crop_style = crop_style
        self.expand_ratio = expand_ratio
        self.crop_batch_size = crop_batch_size
        if box_style not in BOX_STYLES:
            raise ValueError(f'RegionCLIPClassifier: box_style={box_style!r}, '
                             f'use one of {BOX_STYLES}.')
        self.box_style = box_style
        self.mask_before_crop = mask_before_crop
        self.classify_empty = classify_empty
        if crop_resize not in ('roi_align', 'slice'):
            raise ValueError(f'RegionCLIPClassifier: crop_resize={crop_resize!r}, '
                             f"use 'roi_align' or 'slice'.")
        self.crop_resize = crop_resize
        self.logit_scale = logit_scale
        self.mask_prompt_at_embed = mask_prompt_at_embed
        self.inference_dtype = 'fp32'
        self.precision_mode = 'autocast'
        num_blocks = len(self.clip.visual.transformer.resblocks)
        if not 0 <= mask_prompt_depth <= num_blocks:
            raise ValueError(f'mask_prompt_depth={mask_prompt_depth} must be '
                             f'in [0, {num_blocks}] (CLIP blocks).')
        self.mask_prompt_depth = mask_prompt_depth
        self.mask_prompts = None
        if mask_prompt_depth:
            ph, pw = self.clip.patch_size
            self.prompt_grid = (crop_size // ph, crop_size // pw)
            num_patches = self.prompt_grid[0] * self.prompt_grid[1]
            self.mask_prompts = nn.Parameter(
                torch.empty(mask_prompt_depth, num_patches, self.clip.width))
            nn.init.normal_(self.mask_prompts, std=0.02)

    @property
    def embed_dim(self) -> int:
        return self.clip.embed_dim

    # ------------------------------------------------------------ crops
    def normalize(self, pixels: Tensor) -> Tensor:
        """Pixel values (..., 3, H, W) in [0, 255] -> CLIP's input space."""
        return (pixels - self.clip_mean.to(pixels)) / self.clip_std.to(pixels)

    def fill_value(self, like: Tensor) -> Tensor:
        """The fill colour in CLIP's normalised space, (3, 1, 1)."""
        if self.mask_fill == 'mean':
            return like.new_zeros(3, 1, 1)
        return -self.clip_mean.to(like) / self.clip_std.to(like)

    def crop_regions(self, pixels: Tensor, masks: Tensor, with_masks: bool = True
                     ) -> Tuple[Tensor, Optional[Tensor]]:
        """Masked crops of one image, in CLIP's normalised space.

        Args:
            pixels (Tensor): (3, H, W) image in pixel values [0, 255].
            masks (Tensor): (N, H, W) bool masks.
            with_masks (bool): Also return the crop masks; False may return
                None for them where the crops do not need them (``roi_align``
                crops with ``crop_style='crop'``, or ``'cropmask'`` with
                ``mask_before_crop``), saving their resampling.

        Returns:
            tuple[Tensor, Tensor]: (N, 3, S, S) crops and (N, S, S) bool
            crop masks, ``S = crop_size``.
        """
        if pixels.dim() != 3 or masks.dim() != 3 or \
                pixels.shape[-2:] != masks.shape[-2:]:
            raise ValueError(
                f'crop_regions: expected an image (3, H, W) and masks (N, H, '
                f'W) of the same size, got {tuple(pixels.shape)} and '
                f'{tuple(masks.shape)}.')
        image = self.normalize(pixels.float())[None]
        size = (self.crop_size, self.crop_size)
        n, h, w = masks.shape
        if self.crop_resize == 'slice':
            return self.slice_crops(image[0], masks)
        if self.crop_style == 'mask':
            boxes = masks.new_tensor([[0, 0, w, h]], dtype=torch.float32)
            boxes = boxes.expand(n, -1)
        else:
            boxes = zegformer_mask_boxes(masks) if self.box_style == 'zegformer' \
                else mask_boxes(masks, self.expand_ratio)
        rois = torch.cat([boxes.new_zeros(n, 1), boxes], dim=1).to(image)
        rois_self = torch.cat([torch.arange(n, device=rois.device,
                                            dtype=rois.dtype)[:, None],
                               rois[:, 1:]], dim=1)
        fill_first = self.crop_style == 'cropmask' and self.mask_before_crop
        crop_masks = None
        if with_masks or self.crop_style == 'mask' or \
                (self.crop_style == 'cropmask' and not fill_first):
            crop_masks = roi_align(masks[:, None].to(image), rois_self, size,
                                   spatial_scale=1.0, sampling_ratio=-1,
                                   aligned=True)[:, 0] > 0.5
        if fill_first:
            # the image filled outside each mask (one select: the same values
            # as image * m + fill * (1 - m)), then cropped
            filled = torch.where(masks[:, None], image, self.fill_value(image))
            crops = roi_align(filled, rois_self, size, spatial_scale=1.0,
                              sampling_ratio=-1, aligned=True)
            return crops, crop_masks
        crops = roi_align(image, rois, size, spatial_scale=1.0,
                          sampling_ratio=-1, aligned=True)
        if self.crop_style != 'crop':
            keep = crop_masks[:, None].to(crops)
            crops = crops * keep + self.fill_value(crops) * (1 - keep)
        return crops, crop_masks

    # ---------------------------------------------------------- encoding
    def masked_patches(self, crop_masks: Tensor) -> Tensor:
        """(N, L) bool: patches without any mask pixel (fully masked out)."""
        ph, pw = self.clip.patch_size
        covered = F.max_pool2d(crop_masks[:, None].float(), (ph, pw),
                               stride=(ph, pw), ceil_mode=True)
        return covered.flatten(1) == 0

    def slice_crops(self, image: Tensor, masks: Tensor
                    ) -> Tuple[Tensor, Tensor]:
        """OVSeg's crops (``crop_resize='slice'``) of a normalised image.

        Args:
            image (Tensor): (3, H, W) image in CLIP's normalised space.
            masks (Tensor): (N, H, W) bool masks.

        Returns:
            tuple[Tensor, Tensor]: (N, 3, S, S) crops and (N, S, S) bool
            crop masks.
        """
        n, h, w = masks.shape
        if self.crop_style == 'mask':
            boxes = masks.new_tensor([[0, 0, w, h]], dtype=torch.float32).expand(n, -1)
        else:
            boxes = mask_boxes(masks, self.expand_ratio)
        size = (self.crop_size, self.crop_size)
        fill = self.fill_value(image)
        crops, crop_masks = [], []
        for (x1, y1, x2, y2), mask in zip(boxes.trunc().long().tolist(), masks):
            crop = image[None, :, y1:y2, x1:x2]
            keep = mask[None, None, y1:y2, x1:x2].to(image)
            if self.crop_style != 'crop':
                crop = crop * keep + fill * (1 - keep)
            crops.append(F.interpolate(crop, size=size, mode='bicubic'))
            crop_masks.append(F.interpolate(keep, size=size, mode='nearest'))
        return torch.cat(crops), torch.cat(crop_masks)[:, 0] > 0.5

    def embed_with_prompt(self, crops: Tensor, masked: Tensor
                          ) -> Tuple[Tensor, Tuple[int, int]]:
        """Patch embeddings with ``mask_prompts[0]`` at the masked patches,
        then class token, position embedding and ``ln_pre``
        (``mask_prompt_at_embed``)."""
        visual = self.clip.visual
        x = visual.conv1(crops.to(visual.conv1.weight.dtype)).to(visual.class_embedding.dtype)
        grid_hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        x = torch.where(masked, self.mask_prompts[0].to(x), x)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1)
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.clip.interpolated_pos_embed(grid_hw).to(x.dtype)
        return visual.ln_pre(x), grid_hw

    def encode(self, crops: Tensor, crop_masks: Optional[Tensor] = None
               ) -> Tensor:
        """L2-normalised CLIP image embeddings (N, D) of normalised crops.

        With mask prompts, ``crop_masks`` (N, S, S) are required: in block
        ``l < mask_prompt_depth`` the tokens of fully masked-out patches are
        replaced by ``mask_prompts[l]`` (OVSeg, Sec. 3.3).
        """
        clip = self.clip
        at_embed = self.mask_prompts is not None and self.mask_prompt_at_embed
        if at_embed:
            if crop_masks is None:
                raise ValueError('RegionCLIPClassifier with mask prompts '
                                 'needs the crop masks.')
            x, grid_hw = self.embed_with_prompt(
                crops, self.masked_patches(crop_masks)[..., None])
        else:
            x, grid_hw = clip.embed(crops)
        masked = None
        if self.mask_prompts is not None:
            if crop_masks is None:
                raise ValueError('RegionCLIPClassifier with mask prompts '
                                 'needs the crop masks.')
            if tuple(grid_hw) != self.prompt_grid:
                raise ValueError(
                    f'Mask prompts were made for a {self.prompt_grid} patch '
                    f'grid but the crops give {tuple(grid_hw)}; feed '
                    f'{self.crop_size}x{self.crop_size} crops.')
            masked = self.masked_patches(crop_masks)[..., None]
        blocks = clip.visual.transformer.resblocks
        for i, block in enumerate(blocks):
            if masked is not None and i < self.mask_prompt_depth and \
                    not (at_embed and i == 0):
                patches = torch.where(masked, self.mask_prompts[i].to(x),
                                      x[:, 1:])
                x = torch.cat([x[:, :1], patches], dim=1)
            if i == len(blocks) - 1 and _sdpa_ready(block):
                x = class_token_block(block, x)  # only x[:, 0] is used
            else:
                x = clip_block(block, x)
        with float32_region(x.device.type):
            embeds = clip.visual.ln_post(x[:, 0].float()) @ \
                clip.visual.proj.float()
        return F.normalize(embeds, dim=-1)

    def region_embeddings(self, pixels: Tensor, masks: Tensor) -> Tensor:
        """Embeddings (N, D) of the masked crops of one image.

        Args:
            pixels (Tensor): (3, H, W) pixel values.
            masks (Tensor): (N, H, W) bool masks at the image size.
        """
        out = []
        dtype = 'fp32' if self.training or self.precision_mode == 'cast' else \
            check_inference_dtype(self.inference_dtype)
        for start in range(0, masks.shape[0], self.crop_batch_size):
            crops, crop_masks = self.crop_regions(
                pixels, masks[start:start + self.crop_batch_size],
                with_masks=self.mask_prompts is not None)
            with inference_autocast(dtype, crops.device.type):
                out.append(self.encode(crops, crop_masks).float())
        if not out:
            return pixels.new_zeros(0, self.embed_dim)
        return torch.cat(out)

    def forward(self, pixels: Tensor, mask_logits: Tensor,
                class_embeds: ClassEmbeddings,
                void_embed: Optional[Tensor] = None,
                keep: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """CLIP class logits of every mask proposal of a batch.

        Args:
            pixels (Tensor): (B, 3, H, W) images in pixel values [0, 255].
            mask_logits (Tensor): (B, Q, h, w) mask logits (any size; resized
                bilinearly to the image, sigmoid > ``mask_threshold``).
            class_embeds (ClassEmbeddings): The vocabulary.
            void_embed (Tensor, optional): (D,) embedding appended as a last
                class (OVSeg's non-object embedding).
            keep (Tensor, optional): (B, Q) bool, the proposals to classify;
                the others are treated as empty masks (not encoded). None:
                all.

        Returns:
            tuple[Tensor, Tensor]: (B, Q, C) logits (``C + 1`` with a void
            embedding) scaled by CLIP's ``logit_scale``, zero for empty
            masks, and (B, Q) bool, the classified (non-empty, kept) masks.
        """
        if pixels.dim() != 4 or mask_logits.dim() != 4 or \
                pixels.shape[0] != mask_logits.shape[0]:
            raise ValueError(
                f'RegionCLIPClassifier: expected images (B, 3, H, W) and mask '
                f'logits (B, Q, h, w), got {tuple(pixels.shape)} and '
                f'{tuple(mask_logits.shape)}.')
        masks = F.interpolate(mask_logits.float(), size=pixels.shape[-2:],
                              mode='bilinear', align_corners=False)
        masks = masks.sigmoid() > self.mask_threshold
        valid = masks.flatten(2).any(-1)
        if self.classify_empty:
            valid = torch.ones_like(valid)
        if keep is not None:
            if keep.shape != valid.shape:
                raise ValueError(
                    f'RegionCLIPClassifier: keep must be (B, Q) = '
                    f'{tuple(valid.shape)}, got {tuple(keep.shape)}.')
            valid = valid & keep.to(device=valid.device, dtype=torch.bool)
        num_out = class_embeds.num_classes + (void_embed is not None)
        logits = mask_logits.new_zeros(*mask_logits.shape[:2], num_out)
        for b in range(pixels.shape[0]):
            idx = valid[b].nonzero()[:, 0]
            if idx.numel() == 0:
                continue
            embeds = self.region_embeddings(pixels[b], masks[b, idx])
            logits[b, idx] = open_vocab_class_logits(
                embeds, class_embeds, void_embed, self.logit_scale).to(logits)
        return logits, valid
