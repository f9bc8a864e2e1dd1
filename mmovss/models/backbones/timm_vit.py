"""A timm Vision Transformer as an mmseg backbone (DPT-style multi-level tokens).

Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; the
multi-level read-out of Ranftl et al., "Vision Transformers for Dense
Prediction" (DPT), ICCV 2021, as LSeg's official code uses it
(github.com/isl-org/lang-seg, ``modules/models/lseg_vit.py``:
``forward_flex``, ``_resize_pos_embed`` and the forward hooks of
``_make_vit_b16_backbone``). Any method can use it; timm is an optional
extra (``pip install timm``).
"""
import math
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmengine.model import BaseModule
from mmseg.registry import MODELS

__all__ = ['TimmViT']


@MODELS.register_module()
class TimmViT(BaseModule):
    """A timm ``VisionTransformer`` returning the tokens of chosen blocks.

    For each block index in ``out_indices`` the output is the block's patch
    tokens as a map ``(B, C, H/p, W/p)``, and with ``output_cls_token`` the
    pair ``[map, cls_token (B, C)]`` (mmseg's ``VisionTransformer``
    convention, which DPT's ``ReassembleBlocks`` reads for the ``'add'`` and
    ``'project'`` readouts).

    The forward is DPT's ``forward_flex``: patch embedding, class token,
    the position embedding resized bilinearly (``align_corners=False``) from
    its stored square grid to the input's grid, then the blocks. timm's final
    ``norm`` and classifier are not part of this backbone (DPT and LSeg read
    block outputs only; their final-norm output is discarded).

    Args:
        model_name (str): timm model name, e.g. ``'vit_large_patch16_384'``.
        pretrained (bool): Load timm's pretrained weights (a download).
        out_indices (Sequence[int]): Blocks whose outputs are returned.
        output_cls_token (bool): Return ``[map, cls_token]`` pairs.
        model_kwargs (dict, optional): Extra ``timm.create_model`` arguments
            (tiny test models: ``embed_dim``, ``depth``, ``num_heads``,
            ``img_size``).
        frozen (bool): Freeze every parameter.
        skip_init (bool): Allocate the parameters without initialising them
            (built on the meta device, then ``to_empty``): for a model whose
            every weight comes from a checkpoint (ViT-L's 300M random draws
            take seconds and touch 1.2 GB). Such a model is unusable until
            the checkpoint is loaded.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 model_name: str = 'vit_large_patch16_384',
                 pretrained: bool = False,
                 out_indices: Sequence[int] = (5, 11, 17, 23),
                 output_cls_token: bool = True,
                 model_kwargs: Optional[dict] = None,
                 frozen: bool = False,
                 skip_init: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        try:
            import timm
        except ImportError as e:  # pragma: no cover - optional extra
            raise ImportError('TimmViT needs timm: pip install timm') from e
        kwargs = dict(model_kwargs or {})
        kwargs['num_classes'] = 0
        if skip_init:
            if pretrained:
                raise ValueError('TimmViT: skip_init=True with pretrained=True; the '
                                 'pretrained weights would not be loaded.')
            with torch.device('meta'):
                model = timm.create_model(model_name, pretrained=False, **kwargs)
            model = model.to_empty(device='cpu')
        else:
            model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
        if not hasattr(model, 'blocks') or not hasattr(model, 'patch_embed'):
            raise ValueError(f'TimmViT: {model_name!r} is not a timm VisionTransformer '
                             f'(no blocks / patch_embed).')
        if getattr(model, 'num_prefix_tokens', 1) != 1 or \
                getattr(model, 'no_embed_class', False) or model.cls_token is None:
            raise ValueError(f'TimmViT: {model_name!r} must have exactly one class token '
                             f'inside the position embedding (DPT readout).')
        depth = len(model.blocks)
        bad = [i for i in out_indices if not -depth <= i < depth]
        if bad:
            raise ValueError(f'TimmViT: out_indices {list(out_indices)} outside the '
                             f'{depth} blocks of {model_name!r}.')
        # read block outputs only: the final norm and classifier are unused
        model.norm = nn.Identity()
        model.head = nn.Identity()
        if hasattr(model, 'fc_norm'):
            model.fc_norm = nn.Identity()
        self.model = model
        self.out_indices = [i % depth for i in out_indices]
        self.output_cls_token = output_cls_token
        patch = model.patch_embed.patch_size
        self.patch_size = tuple(patch) if isinstance(patch, (tuple, list)) else (patch, patch)
        self.embed_dim = model.embed_dim
        if frozen:
            self.requires_grad_(False)

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """Channels of the forward's outputs (``embed_dim`` each; a
        ``[map, cls_token]`` pair counts as its map's)."""
        return (self.embed_dim, ) * len(self.out_indices)

    def init_weights(self):
        """timm initialises its model; only ``init_cfg`` is applied."""
        if self.init_cfg:
            super().init_weights()

    def resized_pos_embed(self, grid_h: int, grid_w: int) -> Tensor:
        """The position embedding for a (grid_h, grid_w) patch grid.

        DPT's ``_resize_pos_embed``: the class-token entry is kept, the
        square grid is resized with bilinear interpolation
        (``align_corners=False``).
        """
        pos = self.model.pos_embed
        tok, grid = pos[:, :1], pos[0, 1:]
        side = int(math.sqrt(len(grid)))
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode='bilinear')
        grid = grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([tok, grid], dim=1)

    def forward(self, x: Tensor) -> List[Union[Tensor, List[Tensor]]]:
        """Block outputs at ``out_indices`` (maps or ``[map, cls]`` pairs)."""
        b, _, h, w = x.shape
        gh, gw = h // self.patch_size[0], w // self.patch_size[1]
        model = self.model
        tokens = model.patch_embed.proj(x).flatten(2).transpose(1, 2)
        tokens = model.patch_embed.norm(tokens)
        tokens = torch.cat([model.cls_token.expand(b, -1, -1), tokens], dim=1)
        tokens = tokens + self.resized_pos_embed(gh, gw)
        tokens = model.pos_drop(tokens)
        tokens = model.norm_pre(tokens)
        wanted = set(self.out_indices)
        saved = {}
        for i, block in enumerate(model.blocks):
            tokens = block(tokens)
            if i in wanted:
                saved[i] = tokens
            if len(saved) == len(wanted):
                break  # later blocks are not read
        outs = []
        for i in self.out_indices:
            t = saved[i]
            fmap = t[:, 1:].transpose(1, 2).reshape(b, -1, gh, gw)
            outs.append([fmap, t[:, 0]] if self.output_cls_token else fmap)
        return outs
