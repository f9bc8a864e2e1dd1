"""Class-agnostic masks from SAM 2 (Ravi et al., "SAM 2: Segment Anything in
Images and Videos", 2024), automatic mask generation on single images.

``sam2`` is an optional dependency (``pip install sam2``, or the repository
github.com/facebookresearch/sam2), imported only when this generator is
built; its weights are never downloaded: pass the checkpoint file of the
official release (``sam2.1_hiera_large.pt`` ...) and its model config name
(``configs/sam2.1/sam2.1_hiera_l.yaml``).
"""
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from mmseg.registry import MODELS

from .base import BaseMaskGenerator

__all__ = ['SAM2MaskGenerator']


def _import_sam2():
    try:
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
        from sam2.build_sam import build_sam2
    except ImportError as err:
        raise ImportError(
            'SAM2MaskGenerator needs the `sam2` package (github.com/'
            'facebookresearch/sam2): pip install sam2, or use '
            "dict(type='SAMMaskGenerator', ...) (segment-anything) or "
            "dict(type='FileMaskGenerator', mask_dir=...) (pre-computed "
            'masks).') from err
    return build_sam2, SAM2AutomaticMaskGenerator


@MODELS.register_module()
class SAM2MaskGenerator(BaseMaskGenerator):
    """SAM 2's automatic mask generator (frozen, no gradients).

    Args:
        model_cfg (str): The sam2 model config name, e.g.
            ``'configs/sam2.1/sam2.1_hiera_l.yaml'``.
        checkpoint (str): The official SAM 2 checkpoint file.
        generator_cfg (dict, optional): ``SAM2AutomaticMaskGenerator``
            arguments (``points_per_side``, ``pred_iou_thresh``,
            ``stability_score_thresh`` ...; CorrCLIP deploys 8, 0.4, 0.4).
        device (str): Device SAM 2 is built on (``'cpu'`` or ``'cuda'``).
    """

    def __init__(self, model_cfg: str, checkpoint: Optional[str] = None,
                 generator_cfg: Optional[dict] = None,
                 device: str = 'cpu'):
        super().__init__()
        build_sam2, generator_cls = _import_sam2()
        if checkpoint is None:
            raise ValueError(
                'SAM2MaskGenerator: SAM 2 weights are not downloaded '
                'automatically; set checkpoint=/path/to/sam2.1_hiera_large.pt'
                ' (github.com/facebookresearch/sam2).')
        generator_cfg = dict(generator_cfg or {})
        if generator_cfg.get('output_mode', 'binary_mask') != 'binary_mask':
            raise ValueError("SAM2MaskGenerator needs output_mode="
                             "'binary_mask'.")
        self.sam2 = build_sam2(model_cfg, checkpoint, device=device).eval()
        self.sam2.requires_grad_(False)
        self.generator = generator_cls(self.sam2, **generator_cfg)

    def train(self, mode: bool = True):
        super().train(mode)
        self.sam2.eval()
        return self

    @torch.no_grad()
    def forward(self, pixels: Tensor,
                img_meta: Optional[dict] = None) -> Tuple[Tensor, Tensor]:
        if pixels is None or pixels.dim() != 3 or pixels.shape[0] != 3:
            raise ValueError('SAM2MaskGenerator expects one RGB image (3, H, '
                             'W) in [0, 255].')
        image = pixels.clamp(0, 255).round().to(torch.uint8)
        image = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
        records = self.generator.generate(image)
        h, w = pixels.shape[-2:]
        if not records:
            return (torch.zeros(0, h, w, dtype=torch.bool,
                                device=pixels.device), pixels.new_zeros(0))
        masks = torch.from_numpy(np.stack(
            [r['segmentation'] for r in records])).to(pixels.device)
        scores = pixels.new_tensor([float(r['predicted_iou'])
                                    for r in records])
        return masks.bool(), scores
