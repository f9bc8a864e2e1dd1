"""What a last-block mode may see of the rest of the tower.

The modes of :mod:`.training_free_modes` only see the tokens entering the
last block. Two published methods also use the earlier blocks:

* ResCLIP (Yang et al., CVPR 2025) mixes the query-key attention
  probabilities of intermediate blocks into the last block (RCS) and runs
  the last block twice, the second time guided by the labels that the first
  pass gets from the vocabulary (SFR);
* SC-CLIP (Bai et al., arXiv 2411.15869) uses the outputs of intermediate
  blocks (anomaly resolution, self-adjustment, multi-level fusion).

A mode declares what it needs with :func:`register_context_request`: a
function of the number of blocks and the mode's options returning a
:class:`ContextRequest` (which block outputs and which attention
probabilities to keep). :class:`~.training_free_vit.TrainingFreeCLIPViT`
then runs :func:`forward_with_context` instead of the plain loop over the
blocks and calls the mode with ``context=`` a :class:`TowerContext`:
the kept tensors, the network input (for guidance), the tower (for
``ln_post``/``proj``) and, for modes that need the vocabulary, a
:class:`TextFeedback` supplied by the segmentor
(:attr:`TrainingFreeCLIPViT.text_feedback`). Modes without a request run
exactly as before.

:func:`record_stages` lets tests and users read the intermediate arrays a
mode computes (ResCLIP's RCS attention, SC-CLIP's anomaly tokens, ...).
"""
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Iterator, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ..utils.clip_attention import clip_block
from .clip_vit import LAST_BLOCK_MODES
from .training_free_modes import merge_heads, project_qkv, with_residual_and_mlp

__all__ = [
    'ContextRequest', 'TextFeedback', 'TowerContext', 'CONTEXT_REQUESTS',
    'register_context_request', 'context_request', 'forward_with_context',
    'clip_block_with_attention', 'record_stages', 'check_block_index'
]


@dataclass(frozen=True)
class ContextRequest:
    """Which ordinary blocks (0 .. L-2) a mode needs, by index.

    Attributes:
        outputs: Blocks whose outputs (B, 1 + h*w, C) are kept.
        attentions: Blocks whose attention probabilities
            ``softmax(q k^T s)`` (B, heads, N, N) are kept.
        text (bool): Whether the mode scores against the vocabulary (needs
            :attr:`TrainingFreeCLIPViT.text_feedback`).
    """
    outputs: FrozenSet[int] = frozenset()
    attentions: FrozenSet[int] = frozenset()
    text: bool = False


@dataclass
class TextFeedback:
    """The vocabulary as a mode sees it: name embeddings and the head's scale.

    Attributes:
        embeds (Tensor): (num_names, D) L2-normalised name embeddings.
        logit_scale (float): The head's temperature ``tau``.
    """
    embeds: Tensor
    logit_scale: float

    def similarities(self, dense: Tensor) -> Tensor:
        """Cosine similarities (B, num_names, h, w) of (B, D, h, w) features.

        The scoring of :meth:`TrainingFreeHead.name_similarities`.
        """
        if dense.shape[1] != self.embeds.shape[1]:
            raise ValueError(
                f'TextFeedback: features have {dense.shape[1]} channels but '
                f'the name embeddings {self.embeds.shape[1]}; the backbone '
                f'and the text encoder must be the same CLIP.')
        dense = F.normalize(dense, dim=1)
        return torch.einsum('bchw,nc->bnhw', dense, self.embeds.to(dense))


@dataclass
class TowerContext:
    """The tower's state handed to a mode with a :class:`ContextRequest`.

    Attributes:
        images (Tensor): (B, 3, H, W) the network input (normalised).
        grid_hw (tuple): The patch grid (h, w).
        outputs (dict): Requested block outputs by block index.
        attentions (dict): Requested attention probabilities by index.
        tower (nn.Module): The backbone (:meth:`project` uses its
            ``ln_post`` and ``proj``).
        text (TextFeedback, optional): The vocabulary, when requested.
        stages (dict, optional): Where modes store intermediate arrays
            (inside :func:`record_stages`), else None.
    """
    images: Tensor
    grid_hw: Tuple[int, int]
    tower: nn.Module
    outputs: Dict[int, Tensor] = field(default_factory=dict)
    attentions: Dict[int, Tensor] = field(default_factory=dict)
    text: Optional[TextFeedback] = None
    stages: Optional[Dict[str, Tensor]] = None

    def project(self, tokens: Tensor) -> Tensor:
        """``ln_post`` + ``proj`` of (B, 1 + h*w, C) tokens -> (B, D, h, w)."""
        return self.tower.project_dense(tokens, self.grid_hw)

    def record(self, name: str, value: Tensor):
        """Keeps ``value`` as stage ``name`` inside :func:`record_stages`."""
        if self.stages is not None:
            self.stages[name] = value.detach()


#: Context requests by last-block mode name:
#: ``fn(num_blocks, **mode_options) -> ContextRequest``.
CONTEXT_REQUESTS: Dict[str, Callable[..., ContextRequest]] = {}


def register_context_request(mode: str):
    """Decorator registering the :class:`ContextRequest` of a mode."""

    def wrap(fn: Callable[..., ContextRequest]):
        CONTEXT_REQUESTS[mode] = fn
        return fn

    return wrap


def context_request(mode: str, num_blocks: int,
                    options: dict) -> Optional[ContextRequest]:
    """The request of ``mode`` for a tower of ``num_blocks`` (None: none)."""
    fn = CONTEXT_REQUESTS.get(mode)
    return None if fn is None else fn(num_blocks, **options)


def check_block_index(index: int, num_blocks: int, what: str) -> int:
    """An index of an ordinary block (0 .. L-2), negative from the end.

    Raises:
        ValueError: Naming ``what`` when the index is not an ordinary block.
    """
    ordinary = num_blocks - 1
    if not -ordinary <= int(index) < ordinary:
        raise ValueError(
            f'{what}={index} is not one of the {ordinary} blocks before the '
            f'last (0..{ordinary - 1}) of this {num_blocks}-block ViT; the '
            f'published values are for ViT-B/16 (12 blocks), set smaller '
            f'indices in last_block_options for smaller towers.')
    return int(index) % ordinary


def clip_block_with_attention(block: nn.Module,
                              x: Tensor) -> Tuple[Tensor, Tensor]:
    """An ordinary CLIP block that also returns its attention probabilities.

    ``A = softmax(q k^T s)`` per head (B, heads, N, N), written out, then
    ``x' = x + O(A v)`` and ``x' + mlp(ln_2(x'))`` (as :func:`clip_block`).
    """
    q, k, v = project_qkv(block, x)
    scale = q.shape[-1]**-0.5
    weights = torch.softmax(torch.matmul(q * scale, k.transpose(-2, -1)),
                            dim=-1)
    attn_out = merge_heads(block, torch.matmul(weights, v))
    return with_residual_and_mlp(block, x, attn_out), weights


_RECORDING: list = [None]


@contextmanager
def record_stages() -> Iterator[Dict[str, Tensor]]:
    """Collects the intermediate arrays of context modes run inside.

    Yields:
        dict: Filled by the modes (names are documented per mode), values of
        the last forward that set them.
    """
    previous = _RECORDING[0]
    _RECORDING[0] = stages = {}
    try:
        yield stages
    finally:
        _RECORDING[0] = previous


def forward_with_context(tower, inputs: Tensor,
                         request: ContextRequest) -> Tuple[Tensor, ...]:
    """:meth:`OpenCLIPViT.forward` keeping what the mode requested.

    The ordinary blocks run through :func:`clip_block` (or
    :func:`clip_block_with_attention` for requested attentions); the last
    block is the mode called with ``context=`` a :class:`TowerContext`.

    Returns:
        tuple[Tensor]: As :meth:`OpenCLIPViT.forward`.
    """
    if inputs.dim() != 4 or inputs.shape[1] != 3:
        raise ValueError(f'{type(tower).__name__} expects (B, 3, H, W) '
                         f'images, got {tuple(inputs.shape)}.')
    text = None
    if request.text:
        provider = getattr(tower, 'text_feedback', None)
        if provider is None:
            raise RuntimeError(
                f'last_block_mode {tower.last_block_mode!r} scores its first '
                f'pass against the vocabulary, but the backbone has no '
                f'text_feedback; build it inside a TrainingFreeSegmentor (which '
                f'connects it) or set backbone.text_feedback to a callable '
                f'returning a TextFeedback.')
        text = provider()
    x, grid_hw = tower.embed(inputs)
    context = TowerContext(images=inputs, grid_hw=grid_hw, tower=tower,
                           text=text, stages=_RECORDING[0])
    blocks = tower.visual.transformer.resblocks
    last = len(blocks) - 1
    maps = {}
    for i, block in enumerate(blocks):
        if i < last:
            if i in request.attentions:
                x, context.attentions[i] = clip_block_with_attention(block, x)
            else:
                x = clip_block(block, x)
            if i in request.outputs:
                context.outputs[i] = x
        else:
            x = LAST_BLOCK_MODES[tower.last_block_mode](
                block, x, grid_hw, context=context,
                **tower.last_block_options)
        if i in tower.out_indices:
            maps[i] = tower._to_map(x, grid_hw)
    outs = [maps[i] for i in tower.out_indices]
    outs.append(tower.project_dense(x, grid_hw))
    return tuple(outs)
