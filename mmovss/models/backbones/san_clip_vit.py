"""The shallow part of a frozen open_clip ViT, as SAN's image backbone.

SAN (Xu et al., CVPR 2023, Sec. 3.2 and Fig. 3) splits CLIP's ViT: the
shallow blocks run on a down-scaled image and feed their features to the
side adapter; the deep blocks recognise the mask proposals (they live in
:class:`~mmovss.models.decode_heads.SANHead`). This backbone keeps the blocks
up to the last of ``out_indices`` and returns

``(image, [origin map], block maps..., class token)``

* ``image``: the full-resolution input (the side adapter's input);
* ``origin map``: the ``ln_pre`` output (with ``out_origin=True``);
* one (B, width, h, w) map per ``out_indices`` entry (the fusion features;
  the last one also starts the recognition);
* the (B, width) class token after the last kept block.
"""
from typing import Sequence, Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.clip_attention import clip_block
from .clip_vit import OpenCLIPViT

__all__ = ['SANCLIPViT']


@MODELS.register_module()
class SANCLIPViT(OpenCLIPViT):
    """Shallow open_clip ViT blocks with SAN's asymmetric input.

    Args:
        out_indices (Sequence[int]): Blocks whose outputs feed the side
            adapter (ViT-B/16: ``(2, 5, 8)``; ViT-L/14: ``(5, 11, 17)``).
            Blocks after the last one are dropped.
        out_origin (bool): Also return the ``ln_pre`` output first.
        encoder_resolution (float): The image is resized by this factor
            (bilinear) before CLIP (0.5 for ViT-B/16, 0.7 for ViT-L/14).
        unfrozen (Sequence[str]): Trainable parameters of the frozen tower;
            SAN trains the position embedding.
        patch_remainder (str): What happens to the last rows/columns of
            the down-scaled image that do not fill a whole patch: ``'pad'``
            (zero-padded to a patch, the default) or ``'crop'`` (dropped,
            as the official SAN's stride-``patch`` ``conv1`` does:
            ``san/model/clip_utils/visual.py``, ``FeatureExtractor.forward``;
            it matters for ViT-L/14 at 0.7x).
        **kwargs: :class:`OpenCLIPViT` arguments (``model_name``,
            ``pretrained``, ``model_cfg``, ``quick_gelu``, ``frozen``, ...).
    """

    def __init__(self,
                 out_indices: Sequence[int] = (2, 5, 8),
                 out_origin: bool = True,
                 encoder_resolution: float = 0.5,
                 unfrozen: Sequence[str] = ('positional_embedding', ),
                 patch_remainder: str = 'pad',
                 **kwargs):
        if kwargs.get('last_block_mode', 'vanilla') != 'vanilla':
            raise ValueError('SANCLIPViT runs CLIP blocks unchanged; remove '
                             '`last_block_mode`.')
        super().__init__(out_indices=out_indices, unfrozen=unfrozen, **kwargs)
        if list(self.out_indices) != sorted(set(self.out_indices)):
            raise ValueError(f'SANCLIPViT: out_indices must increase, got '
                             f'{tuple(out_indices)}.')
        if not 0 < encoder_resolution <= 1:
            raise ValueError(f'encoder_resolution must be in (0, 1], got '
                             f'{encoder_resolution}.')
        if patch_remainder not in ('pad', 'crop'):
            raise ValueError(f"patch_remainder must be 'pad' or 'crop', got "
                             f'{patch_remainder!r}.')
        self.patch_remainder = patch_remainder
        self.out_origin = out_origin
        self.encoder_resolution = encoder_resolution
        num_kept = self.out_indices[-1] + 1
        self.visual.transformer.resblocks = \
            self.visual.transformer.resblocks[:num_kept]
        # the deep blocks, ln_post and proj belong to the recognition head
        self.visual.ln_post = nn.Identity()
        self.visual.proj = None

    def clip_input(self, image: Tensor) -> Tensor:
        """The down-scaled image that CLIP sees."""
        if self.encoder_resolution != 1:
            image = F.interpolate(image, scale_factor=self.encoder_resolution,
                                  mode='bilinear', align_corners=False)
        if self.patch_remainder == 'crop':
            ph, pw = self.patch_size
            image = image[..., :image.shape[-2] // ph * ph,
                          :image.shape[-1] // pw * pw]
        return image

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'SANCLIPViT expects (B, 3, H, W) images, got '
                             f'{tuple(inputs.shape)}.')
        x, grid_hw = self.embed(self.clip_input(inputs))
        outs = [inputs]
        if self.out_origin:
            outs.append(self._to_map(x, grid_hw))
        for i, block in enumerate(self.visual.transformer.resblocks):
            x = clip_block(block, x)
            if i in self.out_indices:
                outs.append(self._to_map(x, grid_hw))
        outs.append(x[:, 0])
        return tuple(outs)

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """Channels of the forward's outputs: the image (3), the maps
        (``width``) and the class token (``width``)."""
        num_maps = int(self.out_origin) + len(self.out_indices)
        return (3, ) + (self.width, ) * num_maps + (self.width, )

    @property
    def num_shallow_blocks(self) -> int:
        return len(self.visual.transformer.resblocks)
