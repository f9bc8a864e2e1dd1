"""Which parameters of a frozen CLIP tower learn.

Shared by the image towers (``backbones/``) and the text towers
(``text_encoders/``): :func:`freeze_except` keeps named parameters trainable
(CAT-Seg-style attention fine-tuning, LSeg's unfrozen image encoder) and
:func:`restrict_in_proj_grad` narrows the trainable fused attention
projections to some of Q, K and V.

CAT-Seg (Cho et al., CVPR 2024, Sec. 3.4 "Fine-tuning CLIP") fine-tunes the
query and value projections of every attention layer of both CLIP encoders
and keeps everything else frozen. open_clip stores the three projections of
a layer in one ``in_proj_weight`` (3W, W) matrix, so "Q and V only" is a
gradient mask on the K rows: their gradient is zero, AdamW's moments stay
zero and the rows do not move (weight decay aside: give these parameters
``decay_mult=0`` to keep K exactly fixed, as the CAT-Seg configs do).
"""
import fnmatch
from typing import Sequence

import torch
import torch.nn as nn

from mmengine.model import BaseModule

__all__ = ['QKV_PARTS', 'PretrainedTower', 'freeze_except', 'restrict_in_proj_grad']

QKV_PARTS = ('q', 'k', 'v')


def freeze_except(module: nn.Module, patterns: Sequence[str], owner: str):
    """Freezes ``module`` except parameters whose names match a pattern.

    Args:
        module (nn.Module): The tower.
        patterns: ``fnmatch`` patterns on parameter names relative to the
            tower, e.g. ``'transformer.resblocks.*.attn.*'``.
        owner (str): Name of the calling module, for the error message.
    """
    module.requires_grad_(False)
    names = [n for n, _ in module.named_parameters()]
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ValueError(
                f'{owner}: unfrozen pattern {pattern!r} matches no parameter; '
                f'names look like {names[:3]} ... {names[-2:]}.')
        for name in matched:
            module.get_parameter(name).requires_grad_(True)


def restrict_in_proj_grad(module: nn.Module, parts: Sequence[str]) -> int:
    """Lets only some of Q, K, V learn in every trainable fused projection.

    For each ``nn.MultiheadAttention`` under ``module`` whose
    ``in_proj_weight`` (rows ``[W_q; W_k; W_v]``) requires gradients, a hook
    zeroes the gradient rows of the parts not listed (and the same for a
    trainable ``in_proj_bias``).

    Args:
        module (nn.Module): A CLIP tower (or any module).
        parts (Sequence[str]): Subset of ``('q', 'k', 'v')`` that may learn.

    Returns:
        int: Number of attention layers restricted.
    """
    parts = tuple(parts)
    unknown = [p for p in parts if p not in QKV_PARTS]
    if unknown or not parts:
        raise ValueError(f'attention parts {parts!r}: use a non-empty subset '
                         f'of {QKV_PARTS}, e.g. ("q", "v") as in CAT-Seg.')
    if set(parts) == set(QKV_PARTS):
        return 0
    count = 0
    for attn in module.modules():
        if not isinstance(attn, nn.MultiheadAttention):
            continue
        for name in ('in_proj_weight', 'in_proj_bias'):
            param = getattr(attn, name, None)
            if param is None or not param.requires_grad:
                continue
            width = param.shape[0] // 3
            keep = torch.zeros(param.shape[0], dtype=torch.bool)
            for part in parts:
                start = QKV_PARTS.index(part) * width
                keep[start:start + width] = True
            shape = (-1, ) + (1, ) * (param.dim() - 1)
            mask = keep.view(shape)
            param.register_hook(
                lambda grad, mask=mask: grad * mask.to(grad.device, grad.dtype))
            count += 1
    return count


class PretrainedTower(BaseModule):
    """Base of the backbones that wrap a pretrained CLIP image tower ``self.visual``.

    The weights come from the tower's ``pretrained`` file, so
    :meth:`init_weights` applies only an explicit ``init_cfg``;
    :meth:`set_trainable` freezes the tower except named parameters
    (:func:`freeze_except`), and with ``eval_mode`` the tower stays in eval
    mode (no dropout or stochastic depth) while the rest of the model trains.
    """

    def set_trainable(self, frozen: bool, unfrozen: Sequence[str] = (),
                      eval_mode: bool = True) -> None:
        """Freezes ``self.visual`` (except ``unfrozen`` patterns) and records ``eval_mode``.

        Raises:
            ValueError: ``unfrozen`` patterns without ``frozen``.
        """
        self.eval_mode = eval_mode
        if frozen:
            freeze_except(self.visual, unfrozen, type(self).__name__)
        elif unfrozen:
            raise ValueError('`unfrozen` only applies with frozen=True.')

    def init_weights(self):
        """Weights come from ``pretrained``; only ``init_cfg`` is applied."""
        if self.init_cfg:
            super().init_weights()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.eval_mode:
            self.visual.eval()
        return self
