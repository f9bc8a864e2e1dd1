"""Class-agnostic masks from Segment Anything (Kirillov et al., ICCV 2023).

Wraps ``segment_anything``'s automatic mask generator (a grid of point
prompts, IoU-prediction and stability filtering, NMS) as an mmseg module.
``segment_anything`` is an optional dependency (``pip install
segment-anything``, listed in ``requirements/optional.txt``) and its weights
are never downloaded: pass the checkpoint file of the official release
(``sam_vit_h_4b8939.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_b_01ec64.pth``).
``model_cfg`` builds a small SAM with random weights instead (tests only:
its masks are meaningless).
"""
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmseg.registry import MODELS

__all__ = ['SAMMaskGenerator', 'build_small_sam']


def _import_sam():
    try:
        import segment_anything
    except ImportError as err:
        raise ImportError(
            'SAM + CLIP needs the `segment_anything` package: pip install '
            'segment-anything (see requirements/optional.txt).') from err
    return segment_anything


def build_small_sam(img_size: int = 64, patch_size: int = 16,
                    embed_dim: int = 32, depth: int = 1, num_heads: int = 2,
                    out_chans: int = 32, decoder_depth: int = 1,
                    seed: int = 0) -> nn.Module:
    """A SAM with SAM's architecture at a tiny size and random weights.

    Args:
        img_size (int): Longest side the image is resized to.
        patch_size, embed_dim, depth, num_heads: Image encoder ViT sizes.
        out_chans (int): Prompt/mask decoder width (divisible by 8).
        decoder_depth (int): Two-way transformer layers.
        seed (int): Seed of the random weights.
    """
    sam_lib = _import_sam()
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        TwoWayTransformer,
    )
    if out_chans % 8 or img_size % patch_size:
        raise ValueError('build_small_sam: out_chans must be divisible by 8 '
                         'and img_size by patch_size.')
    grid = img_size // patch_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sam = sam_lib.modeling.Sam(
            image_encoder=ImageEncoderViT(
                img_size=img_size, patch_size=patch_size,
                embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                out_chans=out_chans),
            prompt_encoder=PromptEncoder(
                embed_dim=out_chans, image_embedding_size=(grid, grid),
                input_image_size=(img_size, img_size), mask_in_chans=4),
            mask_decoder=MaskDecoder(
                transformer_dim=out_chans,
                transformer=TwoWayTransformer(
                    depth=decoder_depth, embedding_dim=out_chans,
                    num_heads=num_heads, mlp_dim=2 * out_chans),
                iou_head_hidden_dim=out_chans))
    return sam.eval()


@MODELS.register_module()
class SAMMaskGenerator(nn.Module):
    """SAM's automatic mask generator as a module (frozen, no gradients).

    Args:
        model_type (str): ``'vit_h'``, ``'vit_l'`` or ``'vit_b'``.
        checkpoint (str, optional): The official SAM checkpoint file.
        model_cfg (dict, optional): :func:`build_small_sam` arguments
            (random tiny SAM, tests only) instead of a checkpoint.
        generator_cfg (dict, optional): ``SamAutomaticMaskGenerator``
            arguments (``points_per_side=32``, ``pred_iou_thresh=0.88``,
            ``stability_score_thresh=0.95``, ``min_mask_region_area`` ...).
    """

    def __init__(self, model_type: str = 'vit_h',
                 checkpoint: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 generator_cfg: Optional[dict] = None):
        super().__init__()
        sam_lib = _import_sam()
        if model_cfg is not None:
            sam = build_small_sam(**model_cfg)
        else:
            if model_type not in sam_lib.sam_model_registry:
                raise ValueError(
                    f'SAMMaskGenerator: unknown model_type {model_type!r}; '
                    f'use one of {sorted(sam_lib.sam_model_registry)}.')
            if checkpoint is None:
                raise ValueError(
                    'SAMMaskGenerator: SAM weights are not downloaded '
                    'automatically; set checkpoint=/path/to/sam_vit_h_4b8939'
                    '.pth (from github.com/facebookresearch/segment-'
                    'anything), e.g. --cfg-options model.decode_head.'
                    'mask_generator.checkpoint=PATH.')
            sam = sam_lib.sam_model_registry[model_type](
                checkpoint=checkpoint)
        self.sam = sam.eval().requires_grad_(False)
        generator_cfg = dict(generator_cfg or {})
        if generator_cfg.get('output_mode', 'binary_mask') != 'binary_mask':
            raise ValueError("SAMMaskGenerator needs output_mode="
                             "'binary_mask'.")
        self.generator_cfg = generator_cfg

    def train(self, mode: bool = True):
        super().train(mode)
        self.sam.eval()
        return self

    @torch.no_grad()
    def forward(self, pixels: Tensor) -> Tuple[Tensor, Tensor]:
        """Masks of one image.

        Args:
            pixels (Tensor): (3, H, W) RGB pixel values in [0, 255].

        Returns:
            tuple[Tensor, Tensor]: (M, H, W) bool masks and (M,) SAM's
            predicted IoU of each, on the device of ``pixels``.
        """
        from segment_anything import SamAutomaticMaskGenerator
        if pixels.dim() != 3 or pixels.shape[0] != 3:
            raise ValueError(f'SAMMaskGenerator expects one RGB image (3, H, '
                             f'W), got {tuple(pixels.shape)}.')
        image = pixels.clamp(0, 255).round().to(torch.uint8)
        image = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
        generator = SamAutomaticMaskGenerator(self.sam, **self.generator_cfg)
        records = generator.generate(image)
        h, w = pixels.shape[-2:]
        if not records:
            return (torch.zeros(0, h, w, dtype=torch.bool,
                                device=pixels.device),
                    pixels.new_zeros(0))
        masks = torch.from_numpy(
            np.stack([r['segmentation'] for r in records])).to(pixels.device)
        scores = pixels.new_tensor([float(r['predicted_iou'])
                                    for r in records])
        return masks, scores
