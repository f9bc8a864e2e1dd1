"""CLIP ViT for training-free methods, with the published codes' geometry.

:class:`TrainingFreeCLIPViT` is :class:`OpenCLIPViT` plus

* options for the last-block mode (``last_block_options``, e.g. NACLIP's
  ``gaussian_std``), checked against the mode's signature;
* the image geometry of the published training-free implementations (SCLIP,
  NACLIP, ClearCLIP, ProxyCLIP), so that their numbers are reproduced on any
  image size:

  - ``pos_embed_resize='scale_factor'``: position embeddings are resized as
    in DINO's ``interpolate_pos_encoding``, which these codes copy: bicubic
    with ``scale_factor = (n + 0.1) / n_src`` per axis (the sampling grid
    follows the scale factor, not ``n / n_src``); ``'size'`` keeps
    :class:`OpenCLIPViT`'s resizing to the exact size;
  - ``incomplete_patches='drop'``: pixels beyond the last full patch are
    ignored, as the stride-``p`` patch convolution of those codes does;
    ``'pad'`` keeps :class:`OpenCLIPViT`'s zero padding.
"""
import inspect
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from . import (  # noqa: F401  (register the modes)
    resclip_mode,
    scclip_mode,
    training_free_modes,  # noqa: F401  (registers the modes)
)
from .clip_vit import LAST_BLOCK_MODES, OpenCLIPViT
from .tower_context import context_request, forward_with_context

__all__ = ['TrainingFreeCLIPViT', 'resize_pos_embed_by_scale']

POS_EMBED_RESIZES = ('scale_factor', 'size')
INCOMPLETE_PATCHES = ('drop', 'pad')


def check_grid_options(pos_embed_resize: str, incomplete_patches: str) -> None:
    """Refuses unknown ``pos_embed_resize`` / ``incomplete_patches`` values."""
    if pos_embed_resize not in POS_EMBED_RESIZES:
        raise ValueError(f'pos_embed_resize={pos_embed_resize!r}; use one '
                         f'of {POS_EMBED_RESIZES}.')
    if incomplete_patches not in INCOMPLETE_PATCHES:
        raise ValueError(f'incomplete_patches={incomplete_patches!r}; use '
                         f'one of {INCOMPLETE_PATCHES}.')



def resize_pos_embed_by_scale(pos: Tensor, src_hw: Tuple[int, int],
                              grid_hw: Tuple[int, int]) -> Tensor:
    """Resizes (1 + H*W, C) position embeddings as DINO does.

    ``F.interpolate(..., scale_factor=((h + 0.1) / H, (w + 0.1) / W),
    mode='bicubic', align_corners=False)`` on the patch embeddings (Caron
    et al., ICCV 2021, ``vision_transformer.interpolate_pos_encoding``); the
    class token's embedding is kept.

    Returns:
        Tensor: (1 + h*w, C) embeddings.
    """
    (sh, sw), (h, w) = src_hw, grid_hw
    if (sh, sw) == (h, w):
        return pos
    cls_pos, patch = pos[:1], pos[1:]
    patch = patch.reshape(1, sh, sw, -1).permute(0, 3, 1, 2)
    patch = F.interpolate(
        patch, scale_factor=((h + 0.1) / sh, (w + 0.1) / sw), mode='bicubic',
        align_corners=False, recompute_scale_factor=False)
    if tuple(patch.shape[-2:]) != (h, w):  # pragma: no cover - float guard
        raise RuntimeError(f'Position embeddings resized to '
                           f'{tuple(patch.shape[-2:])}, expected {(h, w)}.')
    patch = patch.permute(0, 2, 3, 1).reshape(h * w, -1)
    return torch.cat([cls_pos, patch], dim=0)


@MODELS.register_module()
class TrainingFreeCLIPViT(OpenCLIPViT):
    """open_clip ViT with a training-free last block (frozen).

    Args:
        last_block_mode (str): A mode of :data:`LAST_BLOCK_MODES`, e.g.
            ``'maskclip'``, ``'sclip'``, ``'clearclip'``, ``'naclip'``.
        last_block_options (dict, optional): Keyword options of the mode,
            e.g. ``dict(gaussian_std=5.0)`` for ``'naclip'``.
        pos_embed_resize (str): ``'scale_factor'`` (the published codes,
            default) or ``'size'`` (see the module docstring).
        incomplete_patches (str): ``'drop'`` (the published codes, default)
            or ``'pad'``.
        **kwargs: :class:`OpenCLIPViT` arguments (``model_name``,
            ``pretrained``, ``model_cfg``, ``out_indices``, ...).
    """

    def __init__(self,
                 last_block_mode: str = 'vanilla',
                 last_block_options: Optional[dict] = None,
                 pos_embed_resize: str = 'scale_factor',
                 incomplete_patches: str = 'drop',
                 **kwargs):
        kwargs.setdefault('out_indices', ())
        super().__init__(last_block_mode=last_block_mode, **kwargs)
        check_grid_options(pos_embed_resize, incomplete_patches)
        self.pos_embed_resize = pos_embed_resize
        self.incomplete_patches = incomplete_patches
        self.last_block_options = dict(last_block_options or {})
        self._check_options(last_block_mode, self.last_block_options)
        self._scaled_pos_cache: Dict[tuple, Tensor] = {}
        # modes that see earlier blocks (ResCLIP, SC-CLIP; tower_context.py)
        self.context_request = context_request(
            last_block_mode, len(self.visual.transformer.resblocks),
            self.last_block_options)
        #: ``() -> TextFeedback`` for modes scoring against the vocabulary
        #: (ResCLIP's SFR); connected by TrainingFreeSegmentor.
        self.text_feedback = None

    @staticmethod
    def _check_options(mode: str, options: dict):
        fn = LAST_BLOCK_MODES[mode]
        try:
            inspect.signature(fn).bind(None, None, None, **options)
        except TypeError as e:
            raise TypeError(
                f'last_block_options {options} do not fit last_block_mode '
                f'{mode!r} ({e}); its signature is '
                f'{inspect.signature(fn)}.') from None

    def interpolated_pos_embed(self, grid_hw: Tuple[int, int]) -> Tensor:
        if self.pos_embed_resize == 'size':
            return super().interpolated_pos_embed(grid_hw)
        pos = self.visual.positional_embedding
        key = (tuple(grid_hw), pos.device, pos.dtype, pos._version)
        if pos.requires_grad or key not in self._scaled_pos_cache:
            resized = resize_pos_embed_by_scale(
                pos, tuple(self.visual.grid_size), tuple(grid_hw))
            if pos.requires_grad:
                return resized
            self._scaled_pos_cache = {key: resized}
        return self._scaled_pos_cache[key]

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        if self.incomplete_patches == 'drop':
            ph, pw = self.patch_size
            h, w = x.shape[2] // ph * ph, x.shape[3] // pw * pw
            if h == 0 or w == 0:
                raise ValueError(
                    f'TrainingFreeCLIPViT: image {tuple(x.shape[2:])} is '
                    f'smaller than one {self.patch_size} patch.')
            x = x[:, :, :h, :w]
        return super().embed(x)

    def forward_last_block(self, block, x: Tensor,
                           grid_hw: Tuple[int, int]) -> Tensor:
        self._check_mode(self.last_block_mode)
        return LAST_BLOCK_MODES[self.last_block_mode](
            block, x, grid_hw, **self.last_block_options)

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        """As :meth:`OpenCLIPViT.forward`; modes with a context request
        run through :func:`~.tower_context.forward_with_context`."""
        if self.context_request is None:
            return super().forward(inputs)
        return forward_with_context(self, inputs, self.context_request)
