"""detectron2 ResNet (basic stem) keys -> :class:`~mmovss.models.backbones.D2ResNet`.

:class:`D2ResNet` keeps detectron2's parameter names
(``detectron2/modeling/backbone/resnet.py``: ``stem.conv1.weight``,
``stem.conv1.norm.*``, ``res{2-5}.{i}.conv{1-3}.weight`` and ``.norm.*``,
``res{k}.0.shortcut.*``), so a detectron2 checkpoint's backbone converts by
moving it from its prefix (``backbone.``) to ours. The keys are checked:
every block of every stage complete, block counts of a known depth, the
norms FrozenBN's four buffers (``num_batches_tracked`` of a BN-trained
backbone is dropped: FrozenBN has none).
"""
import re
from typing import Dict, Iterable, List, Mapping, Tuple

import torch

from .common import ConversionError

__all__ = ['D2_RESNET_KEY', 'd2_resnet_keys', 'd2_resnet_to_mmovss', 'd2_resnet_depth']

D2_RESNET_KEY = re.compile(
    r'^(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))\.'
    r'(weight|norm\.(weight|bias|running_mean|running_var|num_batches_tracked))$')
"""A (prefix-free) key of detectron2's ResNet."""

_NORM = ('weight', 'bias', 'running_mean', 'running_var')
_BLOCKS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): (34, 50), (3, 4, 23, 3): 101,
           (3, 8, 36, 3): 152}


def _conv_keys(name: str) -> List[str]:
    return [f'{name}.weight'] + [f'{name}.norm.{n}' for n in _NORM]


def _stage_blocks(keys: Iterable[str]) -> Dict[int, int]:
    blocks: Dict[int, int] = {}
    for key in keys:
        m = re.match(r'^res([2-5])\.(\d+)\.', key)
        if m:
            stage, idx = int(m.group(1)), int(m.group(2))
            blocks[stage] = max(blocks.get(stage, -1), idx + 1)
    return blocks


def d2_resnet_depth(keys: Iterable[str]) -> Tuple[int, bool]:
    """(depth, bottleneck) of a prefix-free detectron2 ResNet key set.

    Raises:
        ConversionError: The stages' block counts are not those of a
        detectron2 ResNet depth.
    """
    keys = list(keys)
    blocks = _stage_blocks(keys)
    counts = tuple(blocks.get(s, 0) for s in (2, 3, 4, 5))
    bottleneck = any(k.startswith('res2.0.conv3.') for k in keys)
    depth = _BLOCKS.get(counts)
    if isinstance(depth, tuple):
        depth = depth[1] if bottleneck else depth[0]
    if depth is None:
        raise ConversionError(
            f'detectron2 ResNet: blocks per stage {counts} are not those of depth 18, 34, '
            f'50, 101 or 152 (a truncated checkpoint?); pass the complete file.')
    return depth, bottleneck


def d2_resnet_keys(state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """The keys a complete detectron2 ResNet with these stages must have.

    A block has a projection shortcut where its input and output channels
    differ (``BottleneckBlock`` / ``BasicBlock``), read from its convs.
    """
    keys = list(state_dict)
    depth, bottleneck = d2_resnet_depth(keys)
    last = 'conv3' if bottleneck else 'conv2'
    out = _conv_keys('stem.conv1')
    for stage, n in _stage_blocks(keys).items():
        for i in range(n):
            convs = ['conv1', 'conv2'] + (['conv3'] if bottleneck else [])
            first = state_dict.get(f'res{stage}.{i}.conv1.weight')
            final = state_dict.get(f'res{stage}.{i}.{last}.weight')
            if first is None or final is None or first.shape[1] != final.shape[0]:
                convs.append('shortcut')
            for conv in convs:
                out += _conv_keys(f'res{stage}.{i}.{conv}')
    return out


def d2_resnet_to_mmovss(state_dict: Mapping[str, torch.Tensor], src_prefix: str = 'backbone.',
                        dst_prefix: str = 'backbone.') -> Dict[str, torch.Tensor]:
    """Moves a detectron2 ResNet from ``src_prefix`` to ``dst_prefix``.

    Args:
        state_dict (Mapping): Official keys; only those under ``src_prefix``
            are read.
        src_prefix (str): The backbone's prefix in the checkpoint.
        dst_prefix (str): Its prefix in the mmovss model.

    Returns:
        dict: ``dst_prefix + key`` -> tensor for every ResNet key
        (``num_batches_tracked`` dropped).

    Raises:
        ConversionError: A key under ``src_prefix`` that is not a ResNet key,
        or a missing one (names the first ones).
    """
    rest = {k[len(src_prefix):]: v for k, v in state_dict.items() if k.startswith(src_prefix)}
    unknown = sorted(k for k in rest if not D2_RESNET_KEY.match(k))
    if unknown:
        raise ConversionError(
            f'detectron2 ResNet: {len(unknown)} unknown key(s) under {src_prefix!r}, e.g. '
            f'{unknown[:5]}; pass a checkpoint of detectron2\'s ResNet (basic stem).')
    missing = sorted(set(d2_resnet_keys(rest)) - set(rest))
    if missing:
        raise ConversionError(
            f'detectron2 ResNet: {len(missing)} missing key(s) under {src_prefix!r}, e.g. '
            f'{missing[:5]} (an interrupted download is truncated: download it again).')
    return {dst_prefix + k: v for k, v in rest.items()
            if not k.endswith('num_batches_tracked')}
