"""Trident: CLIP + DINO features of sub-images, aggregated by SAM's attention.

Shi et al., "Harnessing Vision Foundation Models for High-Performance,
Training-Free Open Vocabulary Segmentation", ICCV 2025 (arXiv 2411.09219;
its parts are cited by name: sub-image splicing of CLIP-DINO features and
SAM-based global aggregation); reproduced from github.com/YuHengsss/Trident (``trident.py``,
``Trident.get_trident_seg``; ``open_clip/transformer.py``,
``VisionTransformer.forward`` / ``custom_attn`` / ``guidance_attn`` /
``get_sam_sim``; ``seg_utils/utils.py``, ``preprocess_image``). It extends
ProxyCLIP's proxy backbone (:class:`~.proxyclip_vit.ProxyCLIPViT`) from one
window to the whole image:

1. **Sub-images** (the paper's splicing): the network input is resized
   bilinearly so that both sides are multiples of CLIP's patch ``p`` and at
   least the window (``preprocess_image``), then cut into ``slide_crop``
   windows at ``slide_stride`` (mmseg's placement), all encoded as one batch.
2. **CLIP-DINO last block** (ProxyCLIP's Eq. 3-5): in each window
   ``S = f^T f`` of DINO's normalised last-layer patch features and
   ``O(softmax(gamma (S - beta m)) v~)`` with negatives at ``-inf``; ``v~``
   CLIP's last-block values (class token dropped) resized bilinearly to the
   DINO grid; no residual, no FFN. Unlike ProxyCLIP, ``m`` is the mean of
   ``S`` over **all windows of the image** (the reference batches them).
3. **Splicing**: the window outputs (before ``ln_post``)
   are placed at their position on the whole image's patch grid (scaled by
   the DINO/CLIP grid ratio ``r``) and averaged where windows overlap.
4. **SAM aggregation** (the paper's global aggregation): SAM's image encoder sees the
   original image (resized to multiples of 16, then SAM's own resize to the
   long side 1024); from its last (global) block, per head ``h``, the
   attention ``A_h`` and the normalised values give ``C_h = v^_h v^_h^T``.
   With ``t(i) = min(cos_fac * mean_{h, j} C_h(i, j), 0.9)``,
   ``W = rownorm(mean_h [C_h > t] * A_h)`` on the valid (unpadded) part of
   SAM's grid; the spliced map, resized bilinearly to that grid, is
   aggregated ``x = W x`` (no projection) and then ``ln_post`` and ``proj``.
   ``refine_neg_cos=False`` replaces negative thresholds by 0.6. For
   Cityscapes (``sam_splits=2``) SAM sees the left and right halves
   separately and each half of the map is aggregated with its own ``W``.

The optional SAM prompt refinement of the reference (``sam_refinement``,
off in its configs) is not implemented. The original image reaches the
backbone through :attr:`TridentCLIPViT.sam_images`, set by
:class:`~mmovss.models.segmentors.TridentSegmentor`.
"""
from functools import partial
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.clip_attention import clip_block
from ..utils.mixed_precision import float32_region
from . import tower_context
from .proxyclip_vit import ProxyCLIPViT

__all__ = [
    'TridentCLIPViT', 'build_sam_image_encoder', 'sam_guidance_weights',
    'trident_resize_input', 'splice_windows'
]

#: SAM image encoders as ``segment_anything``'s ``build_sam`` sets them.
SAM_ENCODERS = {
    'vit_b': dict(embed_dim=768, depth=12, num_heads=12,
                  global_attn_indexes=(2, 5, 8, 11)),
    'vit_l': dict(embed_dim=1024, depth=24, num_heads=16,
                  global_attn_indexes=(5, 11, 17, 23)),
    'vit_h': dict(embed_dim=1280, depth=32, num_heads=16,
                  global_attn_indexes=(7, 15, 23, 31)),
}
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


def build_sam_image_encoder(model_type: str = 'vit_b',
                            checkpoint: Optional[str] = None,
                            encoder_cfg: Optional[dict] = None) -> nn.Module:
    """SAM's image encoder (``segment_anything``), frozen.

    Args:
        model_type (str): ``'vit_b'`` (Trident's default), ``'vit_l'``,
            ``'vit_h'``.
        checkpoint (str, optional): A SAM checkpoint (``image_encoder.*``
            keys, or the encoder's own keys); None: random (tests).
        encoder_cfg (dict, optional): ``ImageEncoderViT`` arguments that
            replace the model type's (e.g. a tiny encoder in tests).
    """
    try:
        from segment_anything.modeling import ImageEncoderViT
    except ImportError as e:
        raise ImportError('Trident needs the `segment_anything` package: pip '
                          'install segment-anything') from e
    if model_type not in SAM_ENCODERS:
        raise ValueError(f'sam model_type={model_type!r}; use one of '
                         f'{sorted(SAM_ENCODERS)}.')
    cfg = dict(img_size=1024, patch_size=16, mlp_ratio=4, out_chans=256,
               qkv_bias=True, use_rel_pos=True, window_size=14,
               norm_layer=partial(nn.LayerNorm, eps=1e-6),
               **SAM_ENCODERS[model_type])
    cfg.update(encoder_cfg or {})
    encoder = ImageEncoderViT(**cfg)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location='cpu', weights_only=True)
        if any(k.startswith('image_encoder.') for k in state):
            state = {k[len('image_encoder.'):]: v for k, v in state.items()
                     if k.startswith('image_encoder.')}
        missing, unexpected = encoder.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith('neck.')]
        if missing or unexpected:
            raise RuntimeError(
                f'SAM checkpoint {checkpoint!r} does not fit the {model_type} '
                f'image encoder: missing {missing[:5]}, unexpected '
                f'{unexpected[:5]}.')
    last = encoder.blocks[-1]
    if last.window_size != 0:
        raise ValueError('Trident needs a SAM encoder whose last block uses '
                         'global attention (global_attn_indexes ends with '
                         'depth - 1).')
    encoder.requires_grad_(False)
    return encoder.eval()


def _sam_input(encoder: nn.Module, rgb: np.ndarray) -> Tuple[Tensor, tuple]:
    """SamPredictor.set_image's preprocessing: (1, 3, S, S), input size."""
    from segment_anything.utils.transforms import ResizeLongestSide
    image = ResizeLongestSide(encoder.img_size).apply_image(rgb)
    x = torch.as_tensor(image).permute(2, 0, 1).contiguous()[None].float()
    input_hw = tuple(x.shape[-2:])
    mean = torch.tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(SAM_PIXEL_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    x = F.pad(x, (0, encoder.img_size - input_hw[1], 0,
                  encoder.img_size - input_hw[0]))
    return x, input_hw


@torch.no_grad()
def sam_guidance_weights(encoder: nn.Module, rgb: np.ndarray, cos_fac: float,
                         refine_neg_cos: bool = True,
                         stride: int = 16) -> Tuple[Tensor, Tuple[int, int]]:
    """Trident's aggregation weights ``W`` from SAM (module docstring, 4).

    Args:
        encoder (nn.Module): SAM's image encoder.
        rgb (np.ndarray): (H, W, 3) uint8 RGB image.
        cos_fac (float): Threshold factor on the mean value similarity.
        refine_neg_cos (bool): False: negative thresholds become 0.6.
        stride (int): SAM's patch size (valid grid = input size // stride).

    Returns:
        tuple: (M, M) weights on the valid grid (M = h * w) and (h, w).
    """
    from segment_anything.modeling.image_encoder import add_decomposed_rel_pos
    device = encoder.patch_embed.proj.weight.device
    x, input_hw = _sam_input(encoder, rgb)
    x = encoder.patch_embed(x.to(device, encoder.patch_embed.proj.weight.dtype))
    if encoder.pos_embed is not None:
        x = x + encoder.pos_embed
    for block in encoder.blocks[:-1]:
        x = block(x)
    block = encoder.blocks[-1]
    attn = block.attn
    b, gh, gw, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(b, gh * gw, 3, attn.num_heads, -1)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).reshape(3, b * attn.num_heads,
                                                 gh * gw, -1).unbind(0)
    vh, vw = input_hw[0] // stride, input_hw[1] // stride
    valid = torch.zeros(gh, gw, dtype=torch.bool, device=device)
    valid[:vh, :vw] = True
    valid = valid.flatten()
    # the thresholds below compare similarities: float32 also when SAM
    # runs in bf16 (test_cfg.inference_dtype)
    v_valid = F.normalize(v[:, valid].float(), dim=-1)  # (heads, M, d)
    # t(i) = cos_fac * mean_h mean_j <v_i, v_j>: the row means need no matrix
    row_mean = torch.einsum('hmc,hc->hm', v_valid, v_valid.mean(1))
    thresh = cos_fac * row_mean.mean(0)[:, None]
    if not refine_neg_cos:
        thresh = torch.where(thresh < 0.0, torch.full_like(thresh, 0.6),
                             thresh)
    thresh = thresh.clamp(max=0.9)
    refined = None
    for h in range(attn.num_heads):
        logits = (q[h:h + 1] * attn.scale) @ k[h:h + 1].transpose(-2, -1)
        if attn.use_rel_pos:
            logits = add_decomposed_rel_pos(logits, q[h:h + 1],
                                            attn.rel_pos_h, attn.rel_pos_w,
                                            (gh, gw), (gh, gw))
        weights = logits.float().softmax(dim=-1)[0][valid][:, valid]
        sim = v_valid[h] @ v_valid[h].T
        kept = torch.where(sim > thresh, weights, torch.zeros_like(weights))
        refined = kept if refined is None else refined + kept
    refined = refined / attn.num_heads
    return refined / refined.sum(dim=-1, keepdim=True), (vh, vw)


def trident_resize_input(image: Tensor, stride: int, crop: int) -> Tensor:
    """``preprocess_image``: sides to multiples of ``stride``, >= ``crop``.

    The long side is rounded up to a multiple of ``stride``, the short side
    scaled by the same factor (truncated) and rounded up, both at least
    ``crop``; bilinear, ``align_corners=False``. Unchanged when both sides
    are multiples already.
    """
    h, w = image.shape[2:]
    if h % stride == 0 and w % stride == 0:
        return image
    longer = max(h, w)
    dst = longer if longer % stride == 0 else (longer // stride + 1) * stride
    new_h, new_w = int(h * dst / longer), int(w * dst / longer)
    if new_h % stride:
        new_h = (new_h // stride + 1) * stride
    if new_w % stride:
        new_w = (new_w // stride + 1) * stride
    new_h, new_w = max(new_h, crop), max(new_w, crop)
    return F.interpolate(image, (new_h, new_w), mode='bilinear',
                         align_corners=False)


def splice_windows(windows: Tensor, boxes: Sequence[Tuple[int, int, int,
                                                         int]],
                   out_hw: Tuple[int, int]) -> Tensor:
    """Window maps (n, C, h, w) placed at ``boxes`` and averaged: (C, H, W).

    ``boxes`` are ``(y1, x1, y2, x2)`` on the output grid.
    """
    out = windows.new_zeros(windows.shape[1], *out_hw)
    count = windows.new_zeros(1, *out_hw)
    for win, (y1, x1, y2, x2) in zip(windows, boxes):
        out[:, y1:y2, x1:x2] += win
        count[:, y1:y2, x1:x2] += 1
    return out / count


@MODELS.register_module()
class TridentCLIPViT(ProxyCLIPViT):
    """Trident's whole-image CLIP + DINO + SAM backbone (docstring above).

    Returns (forward) one (1, embed_dim, h, w) map on SAM's valid grid for a
    single image, whose pixels (original size, RGB uint8) must be in
    :attr:`sam_images`. Inside :func:`~.tower_context.record_stages` it
    stores ``trident.spliced`` (1, C, H, W) (step 3),
    ``trident.sam_weights<i>`` (M, M) per SAM part (step 4) and
    ``trident.dense`` (the output).

    Args:
        sam (dict): :func:`build_sam_image_encoder` arguments.
        slide_crop (int): Window size (336 in the reference).
        slide_stride (int): Window stride (224; 112 on VOC-20).
        cos_fac (float): SAM similarity threshold factor (1.2; 3.0
            Cityscapes, 0.0 VOC-20).
        refine_neg_cos (bool): See :func:`sam_guidance_weights`.
        sam_splits (int): 1, or 2 (Cityscapes: SAM sees each half).
        **kwargs: :class:`ProxyCLIPViT` arguments (``vfm``, ``beta``,
            ``gamma``, ``model_name``, ...).
    """

    def __init__(self,
                 sam: Optional[dict] = None,
                 slide_crop: int = 336,
                 slide_stride: int = 224,
                 cos_fac: float = 1.2,
                 refine_neg_cos: bool = True,
                 sam_splits: int = 1,
                 **kwargs):
        super().__init__(**kwargs)
        if sam_splits not in (1, 2):
            raise ValueError(f'sam_splits must be 1 or 2, got {sam_splits}.')
        self.sam_encoder = build_sam_image_encoder(**(sam or {}))
        self.slide_crop = int(slide_crop)
        self.slide_stride = int(slide_stride)
        self.cos_fac = float(cos_fac)
        self.refine_neg_cos = bool(refine_neg_cos)
        self.sam_splits = int(sam_splits)
        #: (H, W, 3) uint8 RGB original images of the batch being encoded
        #: (set by TridentSegmentor).
        self.sam_images: Optional[List[np.ndarray]] = None

    def train(self, mode: bool = True):
        super().train(mode)
        self.sam_encoder.eval()
        return self

    def window_boxes(self, hw: Tuple[int, int]) -> List[Tuple[int, ...]]:
        """Windows ``(y1, y2, x1, x2)`` of the resized input (mmseg's)."""
        h_img, w_img = hw
        crop, stride = self.slide_crop, self.slide_stride
        boxes = []
        for hi in range(max(h_img - crop + stride - 1, 0) // stride + 1):
            for wi in range(max(w_img - crop + stride - 1, 0) // stride + 1):
                y2 = min(hi * stride + crop, h_img)
                x2 = min(wi * stride + crop, w_img)
                boxes.append((max(y2 - crop, 0), y2, max(x2 - crop, 0), x2))
        return boxes

    def _proxy_windows(self, crops: Tensor) -> Tuple[Tensor, tuple, tuple]:
        """Step 2 on all windows: (n, C, H', W') outputs on the DINO grid."""
        proxy = self.proxy_features(crops)
        x, grid_hw = self.embed(crops)
        blocks = self.visual.transformer.resblocks
        for block in blocks[:-1]:
            x = clip_block(block, x)
        block = blocks[-1]
        attn = block.attn
        c = attn.embed_dim
        bias = attn.in_proj_bias
        v = F.linear(block.ln_1(x[:, 1:]), attn.in_proj_weight[2 * c:],
                     None if bias is None else bias[2 * c:])
        n, heads = v.shape[0], attn.num_heads
        out_hw = tuple(proxy.shape[2:])
        v = v.reshape(n, *grid_hw, heads, c // heads).permute(0, 3, 4, 1, 2)
        v = F.interpolate(v.reshape(n * heads, c // heads, *grid_hw),
                          size=out_hw, mode='bilinear', align_corners=False)
        v = v.reshape(n, heads, c // heads, -1).transpose(2, 3)
        with float32_region(v.device.type):
            feats = F.normalize(proxy.flatten(2).float(), dim=1)
            sim = torch.einsum('bcm,bcn->bmn', feats, feats)
            # the mean over every window of the image (one batch there)
            sim = (sim - sim.mean() * self.beta) * self.gamma
            sim = sim.masked_fill(sim < 0, float('-inf'))
            weights = F.softmax(sim, dim=-1)
        out = torch.matmul(weights.to(v.dtype)[:, None], v)  # (n, h, M, d)
        out = attn.out_proj(out.transpose(1, 2).reshape(n, -1, c))
        out = out.transpose(1, 2).reshape(n, c, *out_hw)
        return out, grid_hw, out_hw

    def forward(self, inputs: Tensor) -> Tuple[Tensor]:
        if inputs.dim() != 4 or inputs.shape[0] != 1 or inputs.shape[1] != 3:
            raise ValueError(f'TridentCLIPViT encodes one whole image '
                             f'(1, 3, H, W) at a time, got '
                             f'{tuple(inputs.shape)}.')
        if not self.sam_images:
            raise RuntimeError(
                'TridentCLIPViT needs the original image for SAM in '
                '`sam_images`; build it inside a TridentSegmentor.')
        stride = self.patch_size[0]
        image = trident_resize_input(inputs, stride, self.slide_crop)
        boxes = self.window_boxes(tuple(image.shape[2:]))
        crops = torch.cat([image[:, :, y1:y2, x1:x2]
                           for y1, y2, x1, x2 in boxes])
        outs, grid_hw, out_hw = self._proxy_windows(crops)
        if out_hw[1] % grid_hw[1]:
            ratio = int(round(out_hw[0] / grid_hw[0]))
            outs = F.interpolate(outs, size=(grid_hw[0] * ratio,
                                             grid_hw[1] * ratio),
                                 mode='bilinear', align_corners=False)
        else:
            ratio = out_hw[1] // grid_hw[1]
        places = [(y1 // stride * ratio, x1 // stride * ratio,
                   y2 // stride * ratio, x2 // stride * ratio)
                  for y1, y2, x1, x2 in boxes]
        whole = (image.shape[2] // stride * ratio,
                 image.shape[3] // stride * ratio)
        spliced = splice_windows(outs, places, whole)[None]
        tokens, sam_hw = self._sam_aggregate(spliced, self.sam_images[0],
                                             stride)
        recording = tower_context._RECORDING[0]  # record_stages()
        proj = self.visual.proj
        with float32_region(inputs.device.type):
            dense = self.visual.ln_post(tokens.to(proj.dtype)) @ proj
        dense = self._to_map(dense[None], sam_hw, with_cls=False)
        if recording is not None:
            recording['trident.spliced'] = spliced.detach()
            recording['trident.dense'] = dense.detach()
        return (dense, )

    def _sam_aggregate(self, spliced: Tensor, rgb: np.ndarray,
                       stride: int) -> Tuple[Tensor, Tuple[int, int]]:
        """Step 4: (M, C) tokens on SAM's valid grid and that grid.

        The original image is first resized (cv2, bilinear) so that its
        sides are multiples of CLIP's patch ``stride``, as the reference.
        """
        import cv2
        h, w = rgb.shape[:2]
        h16, w16 = -(-h // stride) * stride, -(-w // stride) * stride
        rgb = cv2.resize(np.ascontiguousarray(rgb), (w16, h16))
        if self.sam_splits == 2:
            parts = [rgb[:, :w16 // 2], rgb[:, w16 // 2:]]
            halves = [spliced[..., :spliced.shape[-1] // 2],
                      spliced[..., spliced.shape[-1] // 2:]]
        else:
            parts, halves = [rgb], [spliced]
        outs = []
        recording = tower_context._RECORDING[0]
        for i, (part, half) in enumerate(zip(parts, halves)):
            weights, (vh, vw) = sam_guidance_weights(
                self.sam_encoder, part, self.cos_fac, self.refine_neg_cos)
            if recording is not None:
                recording[f'trident.sam_weights{i}'] = weights.detach()
            x = F.interpolate(half, size=(vh, vw), mode='bilinear',
                              align_corners=False)
            x = x.flatten(2)[0].T  # (M, C)
            outs.append((weights.to(x) @ x).reshape(vh, vw, -1))
        out = torch.cat(outs, dim=1)
        return out.reshape(-1, out.shape[-1]), tuple(out.shape[:2])
