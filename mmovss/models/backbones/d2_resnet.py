"""detectron2's ResNet (basic stem), with detectron2's parameter names.

The backbone of MaskFormer-based methods trained with detectron2 (ZegFormer,
Ding et al., CVPR 2022; MaskFormer, Cheng et al., NeurIPS 2021): ResNet (He
et al., CVPR 2016) as ``detectron2/modeling/backbone/resnet.py``
(``build_resnet_backbone``) builds it:

* ``BasicStem``: 7x7 conv (stride 2, no bias) + norm + ReLU, then a 3x3 max
  pool (stride 2, padding 1) - not mmseg's ``ResNetV1c`` deep stem;
* stages ``res2``-``res5`` of ``BottleneckBlock`` (depth 50/101/152: 1x1,
  3x3, 1x1 convs, the stride in the 1x1 conv when ``stride_in_1x1`` - MSRA's
  original models - else in the 3x3 conv - torchvision's) or ``BasicBlock``
  (depth 18/34); a projection shortcut (1x1 conv + norm) where the channels
  change; ``res5_dilation = 2`` keeps stride 16;
* every conv is detectron2's ``Conv2d`` with its norm as the child ``norm``,
  so the state-dict keys are detectron2's (``stem.conv1.weight``,
  ``res2.0.conv1.norm.running_mean``, ``res3.0.shortcut.weight``...) and a
  detectron2 checkpoint's ``backbone.*`` keys load after stripping the
  prefix (:func:`mmovss.converters.d2_resnet.d2_resnet_to_mmovss`);
* ``norm='FrozenBN'`` (detectron2's default ``MODEL.RESNETS.NORM``):
  ``x * w / sqrt(var + eps) + (b - mean * w / sqrt(var + eps))`` with fixed
  buffers (``FrozenBatchNorm2d``), never updated in training.

Outputs are the maps of ``out_indices`` (0 = ``res2``, stride 4 ...
3 = ``res5``, stride 32).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmengine.model import BaseModule
from mmseg.registry import MODELS

__all__ = ['D2ResNet', 'FrozenBatchNorm2d', 'D2_RESNET_BLOCKS']

D2_RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3),
                    101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
"""Blocks per stage of each depth (``build_resnet_backbone``)."""

D2_NORMS = ('FrozenBN', 'BN', 'SyncBN')


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers).

    detectron2's ``FrozenBatchNorm2d``: ``y = x * s + (b - mu * s)`` with
    ``s = w / sqrt(var + eps)``; its four buffers are the state-dict entries
    (no ``num_batches_tracked``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer('weight', torch.ones(num_features))
        self.register_buffer('bias', torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features) - eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                            self.bias, training=False, eps=self.eps)

    def extra_repr(self) -> str:
        return f'{self.num_features}, eps={self.eps}'


def _norm(norm: str, channels: int) -> nn.Module:
    if norm == 'FrozenBN':
        return FrozenBatchNorm2d(channels)
    if norm == 'SyncBN':
        return nn.SyncBatchNorm(channels)
    return nn.BatchNorm2d(channels)


class D2Conv2d(nn.Conv2d):
    """``nn.Conv2d`` followed by its norm, held as the child ``norm``
    (detectron2's ``layers.Conv2d``)."""

    def __init__(self, *args, norm: Optional[nn.Module] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        return x if self.norm is None else self.norm(x)


class BasicStem(nn.Module):
    """7x7/2 conv + norm + ReLU + 3x3/2 max pool."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.conv1 = D2Conv2d(in_channels, out_channels, 7, stride=2, padding=3,
                              bias=False, norm=_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        self.shortcut = None if in_channels == out_channels else D2Conv2d(
            in_channels, out_channels, 1, stride=stride, bias=False,
            norm=_norm(norm, out_channels))
        self.conv1 = D2Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                              bias=False, norm=_norm(norm, out_channels))
        self.conv2 = D2Conv2d(out_channels, out_channels, 3, padding=1, bias=False,
                              norm=_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(F.relu_(self.conv1(x)))
        out = out + (x if self.shortcut is None else self.shortcut(x))
        return F.relu_(out)


class BottleneckBlock(nn.Module):
    """1x1, 3x3 (grouped, dilated), 1x1 convs and the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int,
                 stride: int, norm: str, num_groups: int = 1,
                 stride_in_1x1: bool = False, dilation: int = 1):
        super().__init__()
        self.shortcut = None if in_channels == out_channels else D2Conv2d(
            in_channels, out_channels, 1, stride=stride, bias=False,
            norm=_norm(norm, out_channels))
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = D2Conv2d(in_channels, bottleneck_channels, 1, stride=stride_1x1,
                              bias=False, norm=_norm(norm, bottleneck_channels))
        self.conv2 = D2Conv2d(bottleneck_channels, bottleneck_channels, 3,
                              stride=stride_3x3, padding=dilation, bias=False,
                              groups=num_groups, dilation=dilation,
                              norm=_norm(norm, bottleneck_channels))
        self.conv3 = D2Conv2d(bottleneck_channels, out_channels, 1, bias=False,
                              norm=_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out = out + (x if self.shortcut is None else self.shortcut(x))
        return F.relu_(out)


@MODELS.register_module()
class D2ResNet(BaseModule):
    """detectron2's ResNet with the basic stem (``build_resnet_backbone``).

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        in_channels (int): Image channels.
        stem_channels (int): ``STEM_OUT_CHANNELS`` (64).
        res2_channels (int): ``RES2_OUT_CHANNELS`` (256; 64 for depth 18/34),
            doubled per stage.
        width_per_group (int): ``WIDTH_PER_GROUP`` (64).
        num_groups (int): ``NUM_GROUPS`` (1); bottleneck width of ``res2`` is
            ``num_groups * width_per_group``, doubled per stage.
        stride_in_1x1 (bool): ``STRIDE_IN_1X1`` (detectron2's default True,
            MSRA models; ZegFormer/MaskFormer set False, torchvision models).
        res5_dilation (int): ``RES5_DILATION`` (1 or 2).
        norm (str): ``'FrozenBN'`` (detectron2's default), ``'BN'`` or
            ``'SyncBN'``.
        out_indices (Sequence[int]): Stages returned (0 = ``res2``).
        freeze_at (int): detectron2's ``FREEZE_AT``: 0 trains everything,
            1 freezes the stem, ``k`` > 1 also ``res2``..``res{k}``.
        init_cfg (dict, optional): mmengine init config (e.g. a converted
            detectron2 checkpoint, ``type='Pretrained'``).
    """

    def __init__(self, depth: int = 50, in_channels: int = 3, stem_channels: int = 64,
                 res2_channels: Optional[int] = None, width_per_group: int = 64,
                 num_groups: int = 1, stride_in_1x1: bool = False, res5_dilation: int = 1,
                 norm: str = 'FrozenBN', out_indices: Sequence[int] = (0, 1, 2, 3),
                 freeze_at: int = 0, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if depth not in D2_RESNET_BLOCKS:
            raise ValueError(f'D2ResNet: depth={depth}, use one of {sorted(D2_RESNET_BLOCKS)}.')
        if norm not in D2_NORMS:
            raise ValueError(f'D2ResNet: norm={norm!r}, use one of {D2_NORMS}.')
        if res5_dilation not in (1, 2):
            raise ValueError(f'D2ResNet: res5_dilation must be 1 or 2, got {res5_dilation}.')
        if not set(out_indices) <= {0, 1, 2, 3}:
            raise ValueError(f'D2ResNet: out_indices {tuple(out_indices)} must be in 0..3.')
        basic = depth in (18, 34)
        if res2_channels is None:
            res2_channels = 64 if basic else 256
        self.depth = depth
        self.out_indices = tuple(out_indices)
        self.freeze_at = freeze_at
        self.stem = BasicStem(in_channels, stem_channels, norm)
        cin, cout = stem_channels, res2_channels
        bottleneck = num_groups * width_per_group
        self.stage_names: List[str] = []
        self.stage_channels: List[int] = []
        for idx, num_blocks in enumerate(D2_RESNET_BLOCKS[depth]):
            dilation = res5_dilation if idx == 3 else 1
            first_stride = 1 if idx == 0 or (idx == 3 and dilation == 2) else 2
            blocks = []
            for i in range(num_blocks):
                stride = first_stride if i == 0 else 1
                if basic:
                    blocks.append(BasicBlock(cin, cout, stride, norm))
                else:
                    blocks.append(BottleneckBlock(cin, cout, bottleneck, stride, norm,
                                                  num_groups, stride_in_1x1, dilation))
                cin = cout
            name = f'res{idx + 2}'
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)
            self.stage_channels.append(cout)
            cout *= 2
            bottleneck *= 2
        self._freeze()

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """Channels of the stages of ``out_indices``."""
        return tuple(self.stage_channels[i] for i in self.out_indices)

    def _freeze(self) -> None:
        if self.freeze_at >= 1:
            self.stem.requires_grad_(False)
        for idx, name in enumerate(self.stage_names, start=2):
            if self.freeze_at >= idx:
                getattr(self, name).requires_grad_(False)

    def forward(self, x: Tensor) -> List[Tensor]:
        """(B, 3, H, W) normalised image -> the maps of ``out_indices``."""
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
