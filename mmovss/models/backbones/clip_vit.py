"""open_clip ViT image tower as a dense backbone.

For an image of any size the tower is run on the patch grid of the
(bottom/right zero-padded) image with its position embeddings resized
bicubically to that grid (cached per grid size). It returns

* the outputs of the chosen blocks as (B, width, h, w) maps, and
* the dense embeddings in CLIP's joint space: ``ln_post`` and ``proj``
  applied to every patch token of the last block (MaskCLIP, Zhou et al.,
  ECCV 2022, Sec. 3.2), as a (B, embed_dim, h, w) map,

with ``h = ceil(H / p)``, ``w = ceil(W / p)`` for patch size ``p``.

The last block is run through :meth:`OpenCLIPViT.forward_last_block`, which
dispatches on ``last_block_mode`` to a function registered with
:func:`register_last_block_mode`; training-free methods (MaskCLIP, SCLIP,
ClearCLIP, ...) add their attention variants there.

Fast path: the other blocks (and the ``vanilla`` mode) run through
:func:`~mmovss.models.utils.clip_attention.clip_block`, which computes
open_clip's ``ResidualAttentionBlock`` with
:func:`torch.nn.functional.scaled_dot_product_attention`.
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.clip_attention import clip_block
from ..utils.mixed_precision import float32_region
from ..utils.open_clip_weights import build_open_clip
from ..utils.trainable_params import PretrainedTower

__all__ = [
    'OpenCLIPViT', 'LAST_BLOCK_MODES', 'register_last_block_mode',
    'vanilla_block'
]

#: Last-block computations by name: ``fn(block, x, grid_hw) -> x`` where
#: ``block`` is open_clip's ``ResidualAttentionBlock``, ``x`` the (B, 1 + h*w,
#: C) tokens (class token first) and ``grid_hw`` the patch grid ``(h, w)``.
LAST_BLOCK_MODES: Dict[str, Callable] = {}


def register_last_block_mode(name: str):
    """Decorator registering a last-block computation under ``name``."""

    def wrap(fn: Callable) -> Callable:
        if name in LAST_BLOCK_MODES and LAST_BLOCK_MODES[name] is not fn:
            raise KeyError(f'Last-block mode {name!r} is already registered.')
        LAST_BLOCK_MODES[name] = fn
        return fn

    return wrap


@register_last_block_mode('vanilla')
def vanilla_block(block: nn.Module, x: Tensor, grid_hw: Tuple[int, int]):
    """CLIP's own block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``.

    Computed by :func:`clip_block` (SDPA).
    """
    return clip_block(block, x)


@MODELS.register_module()
class OpenCLIPViT(PretrainedTower):
    """Dense features and joint-space embeddings from an open_clip ViT.

    Args:
        model_name (str, optional): open_clip ViT name, e.g. ``'ViT-B-16'``,
            ``'ViT-L-14-336'``.
        pretrained (str, optional): open_clip pretrained tag or a local
            checkpoint file (open_clip or OpenAI format); None: random.
        model_cfg (dict, optional): open_clip model-config dict instead of
            ``model_name`` (tests).
        quick_gelu (bool, optional): See
            :func:`mmovss.models.utils.build_open_clip`.
        out_indices (Sequence[int]): Blocks whose outputs are returned as
            maps (negative indices count from the end).
        last_block_mode (str): Name in :data:`LAST_BLOCK_MODES`.
        frozen (bool): Freeze the tower (default).
        unfrozen (Sequence[str]): Parameter-name patterns kept trainable
            when frozen, e.g. ``('transformer.resblocks.*.attn.*',)`` for
            CAT-Seg-style attention fine-tuning.
        eval_mode (bool): Keep the tower in eval mode during training.
        download_cache_dir (str, optional): open_clip's download cache.
        init_cfg (dict, optional): mmengine init config (rarely needed:
            weights come from ``pretrained``).

    Returns (forward):
        tuple[Tensor]: One (B, width, h, w) map per ``out_indices`` entry,
        then the (B, embed_dim, h, w) dense embeddings.
    """

    def __init__(self,
                 model_name: Optional[str] = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 quick_gelu: Optional[bool] = None,
                 out_indices: Sequence[int] = (-1, ),
                 last_block_mode: str = 'vanilla',
                 frozen: bool = True,
                 unfrozen: Sequence[str] = (),
                 eval_mode: bool = True,
                 download_cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if model_cfg is not None:
            model_name = None
        clip, self.weights_identity = build_open_clip(
            model_name, pretrained, model_cfg, quick_gelu, download_cache_dir)
        visual = clip.visual
        if not hasattr(visual, 'conv1') or not hasattr(visual, 'transformer'):
            raise ValueError(
                f'OpenCLIPViT needs an open_clip ViT image tower, but '
                f'{clip.model_label} has {type(visual).__name__}; use '
                f'OpenCLIPConvNeXt for ConvNeXt models and OpenCLIPTimmViT '
                f'for towers built on timm (EVA02-CLIP, SigLIP).')
        if not getattr(visual.transformer, 'batch_first', True):
            raise NotImplementedError(
                'open_clip ViTs with batch_first=False are not supported; '
                'update open_clip (>= 2.23 builds batch-first towers).')
        if getattr(visual, 'attn_pool', None) is not None:
            raise NotImplementedError(
                'ViTs with attentional pooling (CoCa) have no per-token '
                'projection and are not supported.')
        self.visual = visual
        del clip
        self.patch_size = tuple(visual.patch_size)
        self.width = visual.conv1.out_channels
        self.embed_dim = visual.proj.shape[1]
        num_blocks = len(visual.transformer.resblocks)
        self.out_indices = tuple(
            self._check_index(i, num_blocks) for i in out_indices)
        self.last_block_mode = last_block_mode
        self._check_mode(last_block_mode)
        self._pos_cache: Dict[tuple, Tensor] = {}
        self.set_trainable(frozen, unfrozen, eval_mode)

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """Channels of the forward's outputs: ``width`` per ``out_indices``
        entry, then ``embed_dim``
        (:func:`~mmovss.models.utils.width_check.output_widths`)."""
        return (self.width, ) * len(self.out_indices) + (self.embed_dim, )

    @staticmethod
    def _check_index(index: int, num_blocks: int) -> int:
        if not -num_blocks <= index < num_blocks:
            raise ValueError(f'out_indices entry {index} is outside the '
                             f'{num_blocks} blocks of the ViT.')
        return index % num_blocks

    @staticmethod
    def _check_mode(mode: str):
        if mode not in LAST_BLOCK_MODES:
            raise KeyError(f'Unknown last_block_mode {mode!r}; registered: '
                           f'{sorted(LAST_BLOCK_MODES)}.')

    # ------------------------------------------------------------ pieces
    def interpolated_pos_embed(self, grid_hw: Tuple[int, int]) -> Tensor:
        """Position embeddings (1 + h*w, C) for a patch grid, bicubic.

        Cached per grid size while the embedding is not trained.
        """
        pos = self.visual.positional_embedding
        src = tuple(self.visual.grid_size)
        if tuple(grid_hw) == src:
            return pos
        key = (tuple(grid_hw), pos.device, pos.dtype, pos._version)
        if not pos.requires_grad and key in self._pos_cache:
            return self._pos_cache[key]
        cls_pos, patch_pos = pos[:1], pos[1:]
        patch_pos = patch_pos.reshape(1, src[0], src[1], -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=tuple(grid_hw),
                                  mode='bicubic', align_corners=False)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(-1, pos.shape[1])
        resized = torch.cat([cls_pos, patch_pos], dim=0)
        if not pos.requires_grad:
            self._pos_cache = {key: resized}  # one size at a time is typical
        return resized

    def embed(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """Patchify (padding to the patch size), add class and position."""
        ph, pw = self.patch_size
        pad_h = (-x.shape[2]) % ph
        pad_w = (-x.shape[3]) % pw
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        visual = self.visual
        x = visual.conv1(x.to(visual.conv1.weight.dtype))
        # the residual stream keeps the parameters' dtype under autocast
        x = x.to(visual.class_embedding.dtype)
        grid_hw = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1)
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.interpolated_pos_embed(grid_hw).to(x.dtype)
        return visual.ln_pre(x), grid_hw

    def forward_last_block(self, block: nn.Module, x: Tensor,
                           grid_hw: Tuple[int, int]) -> Tensor:
        """The last block, computed by the ``last_block_mode`` function."""
        self._check_mode(self.last_block_mode)
        return LAST_BLOCK_MODES[self.last_block_mode](block, x, grid_hw)

    def project_dense(self, x: Tensor, grid_hw: Tuple[int, int]) -> Tensor:
        """``ln_post`` + ``proj`` on every patch token -> (B, D, h, w).

        Computed in the parameters' dtype (float32) even under autocast.
        """
        proj = self.visual.proj
        with float32_region(x.device.type):
            x = self.visual.ln_post(x[:, 1:].to(proj.dtype)) @ proj
        return self._to_map(x, grid_hw, with_cls=False)

    @staticmethod
    def _to_map(x: Tensor, grid_hw: Tuple[int, int],
                with_cls: bool = True) -> Tensor:
        if with_cls:
            x = x[:, 1:]
        b, _, c = x.shape
        return x.transpose(1, 2).reshape(b, c, grid_hw[0], grid_hw[1])

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'OpenCLIPViT expects (B, 3, H, W) images, got '
                             f'{tuple(inputs.shape)}.')
        x, grid_hw = self.embed(inputs)
        blocks = self.visual.transformer.resblocks
        maps = {}
        last = len(blocks) - 1
        for i, block in enumerate(blocks):
            if i < last:
                x = clip_block(block, x)
            else:
                x = self.forward_last_block(block, x, grid_hw)
            if i in self.out_indices:
                maps[i] = self._to_map(x, grid_hw)
        outs = [maps[i] for i in self.out_indices]
        outs.append(self.project_dense(x, grid_hw))
        return tuple(outs)
