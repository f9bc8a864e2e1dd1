"""ResCLIP's last block: residual cross-correlation attention and semantic feedback.

Yang et al., *ResCLIP: Residual Attention for Training-free Dense
Vision-language Inference*, CVPR 2025 (arXiv 2411.15851); reference code
github.com/yvhangyang/ResCLIP @ 0e085f7 (``clip/model.py``), whose main
setting (``arch='wo_resi'``, ``attn_strategy='resclip'``) builds on NACLIP's
last block. What ResCLIP changes there (notation of :mod:`.training_free_modes`,
``K = k k^T s``, ``Omega`` NACLIP's Gaussian neighbourhood bias):

* **RCS** (residual cross-correlation self-attention, the paper's first
  module; the code's ``attn_rcs``): the query-key attention probabilities
  ``A_l = softmax(q k^T s)`` of the intermediate blocks ``l in S`` are
  averaged per head,
  ``A_rcs = mean_S A_l``, and mixed into the last block's attention:
  ``A(X) = tau_r ((1 - lambda_r) softmax(X + Omega) + lambda_r A_rcs)``
  (rows sum to ``tau_r``; the code's ``attn_rcs_weights = (tau_r,
  lambda_r)``).
* **SFR** (semantic feedback refinement, the paper's second module; the
  code's ``create_logit_temp``, ``create_patch_matrix`` and
  ``generate_attention_sfr``): a first pass with ``X = K`` gives dense
  features, scored against the vocabulary, refined
  with PAMR and turned into one label per patch; a prior ``P`` from those
  labels (same label, a straight path of the same label, Gaussian smoothing,
  :func:`sfr_prior`) then enters the second pass:
  ``X = tau_s ((1 - lambda_s) K + lambda_s P / max P)``.
* Like NACLIP's ``reduced`` block: no residual, no FFN; the output of the
  second pass is the block's output (``ln_post`` + ``proj`` by the
  backbone).

ResCLIP is a plug-in: ``base`` selects the baseline attention it modifies
(the code's ``attn_strategy``: ``'naclip'`` as above, ``'clearclip'``
``q q^T s``, ``'sclip'`` both softmaxes of SCLIP, ``'vanilla'`` ``q k^T s``;
``Omega`` only with ``'naclip'``) and ``residual`` keeps the block's residual
and FFN (the code's ``arch='w_resi'``, required by ``'sclip'``).

The formulas are written from the reference code (the paper's section and
equation numbers could not be re-checked offline: no network access); the
parity fixtures (``tests/test_parity_resclip_scclip.py``) pin them to the
code's outputs.

The vocabulary reaches the backbone as a
:class:`~.tower_context.TextFeedback` (name embeddings and the head's logit
scale, connected by :class:`~mmovss.models.segmentors.TrainingFreeSegmentor`);
the PAMR of the first pass is :class:`~mmovss.models.utils.PAMR` and
``Omega`` is :func:`~.training_free_modes.neighbourhood_bias`.

Recorded stages (:func:`~.tower_context.record_stages`):
``'resclip.rcs_attention'`` (B, heads, N, N), ``'resclip.sfr_labels'``
(B, h, w) name indices, ``'resclip.sfr_prior'`` (B, N, N) ``P`` before the
division by its maximum (N = 1 + h*w, class token first).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from .clip_vit import register_last_block_mode
from .tower_context import ContextRequest, TowerContext, check_block_index, register_context_request
from .training_free_modes import merge_heads, neighbourhood_bias, project_qkv, with_residual_and_mlp

__all__ = [
    'BASES', 'resclip_block', 'resclip_attention', 'sfr_patch_labels',
    'sfr_prior', 'straight_paths_valid'
]

# the code's PAMR of the first pass (hard-coded there)
DEFAULT_SFR_PAMR = dict(type='PAMR', num_iter=10, dilations=(8, 16))


#: The baselines ResCLIP plugs into (the code's ``attn_strategy``):
#: attention logits before the SFR mix, and whether ``Omega`` is added.
BASES = ('naclip', 'clearclip', 'sclip', 'vanilla')


def resclip_attention(q: Tensor, k: Tensor, v: Tensor,
                      omega: Optional[Tensor], rcs: Optional[Tensor],
                      rcs_weights: Sequence[float], prior: Optional[Tensor],
                      sfr_weights: Sequence[float],
                      base: str = 'naclip') -> Tensor:
    """ResCLIP's last-block attention output ``A(X) v`` per head.

    The baseline's attention logits ``X`` (``naclip``: ``k k^T s``;
    ``clearclip``: ``q q^T s``; ``vanilla``: ``q k^T s``; ``sclip``: both
    ``q q^T s`` and ``k k^T s``) become ``tau_s ((1 - lambda_s) X + lambda_s
    prior)`` with an SFR prior; then ``A = softmax(X + Omega)`` (``naclip``),
    ``softmax(X)`` (``clearclip``, ``vanilla``) or the sum of the two
    softmaxes (``sclip``), and with RCS ``A = tau_r ((1 - lambda_r) A +
    lambda_r A_rcs)`` (RCS and SFR of the paper; the code's ``custom_attn``).

    Args:
        q, k, v (Tensor): (B, h, N, d) queries, keys and values.
        omega (Tensor, optional): (N, N) NACLIP's neighbourhood bias
            (``base='naclip'`` only).
        rcs (Tensor, optional): (B, h, N, N) ``A_rcs``.
        rcs_weights: ``(tau_r, lambda_r)``.
        prior (Tensor, optional): (B, N, N) ``P / max P``.
        sfr_weights: ``(tau_s, lambda_s)``.
        base (str): One of :data:`BASES`.

    Returns:
        Tensor: (B, h, N, d).
    """
    scale = k.shape[-1]**-0.5

    def logits(a: Tensor, b: Tensor) -> Tensor:
        x = torch.matmul(a, b.transpose(-2, -1)) * scale
        if prior is None:
            return x
        tau_s, lambda_s = sfr_weights
        return tau_s * ((1 - lambda_s) * x + lambda_s * prior[:, None].to(x))

    if base == 'sclip':
        weights = torch.softmax(logits(q, q), dim=-1) + \
            torch.softmax(logits(k, k), dim=-1)
    elif base == 'naclip':
        weights = torch.softmax(logits(k, k) + omega.to(k), dim=-1)
    elif base in ('clearclip', 'vanilla'):
        weights = torch.softmax(
            logits(q, q) if base == 'clearclip' else logits(q, k), dim=-1)
    else:
        raise ValueError(f'resclip: base={base!r}; use one of {BASES}.')
    if rcs is not None:
        tau_r, lambda_r = rcs_weights
        weights = tau_r * ((1 - lambda_r) * weights + lambda_r * rcs)
    return torch.matmul(weights, v)


def sfr_patch_labels(sims: Tensor, images: Tensor, logit_scale: float,
                     temp_thd: float, patch_size: Tuple[int, int],
                     pamr: Optional[nn.Module]) -> Tensor:
    """SFR's label per patch from the first pass.

    The name similarities are resized bilinearly to the image, refined by
    PAMR guided by the (normalised) image, turned into
    ``softmax(tau * s)`` over the names; a pixel's label is its most
    probable name, or 0 where that probability is below ``temp_thd``; a
    patch's label is the most frequent pixel label of its ``p x p`` pixels
    (ties: the smallest name index, as ``torch.mode``). Pixels beyond the
    last full patch are ignored; a grid extending beyond the image (zero
    padding) repeats the last pixel labels.

    Args:
        sims (Tensor): (B, Q, h, w) cosine similarities.
        images (Tensor): (B, 3, H, W) the network input.
        pamr (nn.Module, optional): A :class:`~mmovss.models.utils.PAMR`.

    Returns:
        Tensor: (B, h, w) int64 name indices.
    """
    b, q, h, w = sims.shape
    ph, pw = patch_size
    logits = F.interpolate(sims, size=images.shape[-2:], mode='bilinear',
                           align_corners=False)
    if pamr is not None:
        logits = pamr(images.to(logits.dtype), logits)
    probs = torch.softmax(logits * logit_scale, dim=1)
    best, labels = probs.max(dim=1)
    labels = torch.where(best < temp_thd, torch.zeros_like(labels), labels)
    pad_h, pad_w = max(h * ph - labels.shape[1], 0), max(w * pw -
                                                           labels.shape[2], 0)
    if pad_h or pad_w:
        labels = F.pad(labels[:, None].float(), (0, pad_w, 0, pad_h),
                       mode='replicate')[:, 0].long()
    blocks = labels[:, :h * ph, :w * pw].reshape(b, h, ph, w, pw)
    blocks = blocks.permute(0, 1, 3, 2, 4).reshape(b, h * w, ph * pw)
    counts = torch.zeros(b, h * w, q, dtype=torch.int32, device=sims.device)
    counts.scatter_add_(2, blocks, torch.ones_like(blocks, dtype=torch.int32))
    return counts.argmax(dim=2).view(b, h, w)  # first maximum: smallest name


def straight_paths_valid(labels: Tensor,
                         max_elements: int = 2**22) -> Tuple[Tensor, Tensor]:
    """ResCLIP's same-entity test between every two patches.

    For patches ``i, j`` at grid positions ``r_i, r_j``, ``s_ij =
    max(|row_i - row_j|, |col_i - col_j|)`` and ``S = max s``; the points
    ``round(r_i (1 - t_k) + r_j t_k)``, ``t_k = k / S`` for ``k = 0 ..
    s_ij`` (float32 ``linspace``, round half to even) must all carry the
    label of ``i``. As in the code (``check_path``), ``t`` stops at
    ``s_ij / S``: only that first part of the segment is tested.

    Args:
        labels (Tensor): (h, w) patch labels.
        max_elements (int): Pairs x steps computed at once (memory).

    Returns:
        tuple[Tensor, Tensor]: (N, N) bool validity and (N, N) int64
        ``s_ij`` (N = h*w, row-major).
    """
    h, w = labels.shape
    n = h * w
    device = labels.device
    index = torch.arange(n, device=device)
    coords = torch.stack([index // w, index % w], dim=-1)  # (N, 2)
    steps = (coords[:, None] - coords[None]).abs().amax(dim=-1)  # (N, N)
    max_steps = int(steps.max())
    t = torch.linspace(0, 1, steps=max_steps + 1, device=device)
    t = t.view(1, 1, -1, 1)
    flat = labels.flatten()
    valid = torch.empty(n, n, dtype=torch.bool, device=device)
    rows = max(1, max_elements // max(1, n * (max_steps + 1)))
    k_index = torch.arange(max_steps + 1, device=device)
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        start = coords[i0:i1, None, None, :]  # (n, 1, 1, 2)
        end = coords[None, :, None, :]  # (1, N, 1, 2)
        points = (start * (1 - t) + end * t).round().long()
        values = labels[points[..., 0], points[..., 1]]  # (n, N, S + 1)
        in_range = k_index <= steps[i0:i1, :, None]
        same = values == flat[i0:i1, None, None]
        valid[i0:i1] = (same | ~in_range).all(dim=-1)
    return valid, steps


def sfr_prior(labels: Tensor, std: float,
              delete_same_entity: bool = True) -> Tensor:
    """ResCLIP's semantic prior ``P`` (N, N) from patch labels (SFR).

    ``M_ij = 1`` if patches ``i`` and ``j`` have the same label, else 0;
    with ``delete_same_entity``, ``M_ij *= exp(-s_ij / S)`` when the
    straight path from ``i`` towards ``j`` leaves the label
    (:func:`straight_paths_valid`). Each row of ``M`` is convolved along
    the flattened (row-major) patch index with a normalised 1-D Gaussian
    of ``std`` (``min(h*w, int(6 std + 1))`` taps, made odd; zero
    padding), clamped at 0 and divided by its sum (+ 1e-8). The class token
    gets a zero row and column (the code's ``generate_attention_sfr``).

    Args:
        labels (Tensor): (h, w) patch labels.
        std (float): Standard deviation of the Gaussian, in patches.

    Returns:
        Tensor: (1 + h*w, 1 + h*w) float32 ``P``.
    """
    h, w = labels.shape
    n = h * w
    flat = labels.flatten()
    mask = (flat[:, None] == flat[None, :]).float()
    if delete_same_entity:
        valid, steps = straight_paths_valid(labels)
        decay = torch.exp(-steps / max(int(steps.max()), 1))
        mask = torch.where(valid, mask, mask * decay)
    size = min(n, int(6 * std + 1))
    size = size if size % 2 == 1 else size + 1
    x = torch.arange(size, device=labels.device) - size // 2
    kernel = torch.exp(-(x**2) / (2 * std**2))
    kernel = kernel / kernel.sum()
    blurred = F.conv1d(mask[:, None], kernel.view(1, 1, -1),
                       padding=size // 2)[:, 0]
    blurred = F.relu(blurred)
    prior = mask.new_zeros(n + 1, n + 1)
    prior[1:, 1:] = blurred / (blurred.sum(dim=1, keepdim=True) + 1e-8)
    return prior


def _check_pair(name: str, value) -> Tuple[float, float]:
    if len(value) != 2:
        raise ValueError(f'resclip: {name} must be (tau, lambda), got '
                         f'{value!r}.')
    tau, lam = (float(v) for v in value)
    if not 0 <= lam <= 1:
        raise ValueError(f'resclip: lambda of {name} must be in [0, 1], got '
                         f'{lam}.')
    return tau, lam


@register_context_request('resclip')
def resclip_request(num_blocks: int,
                    rcs_layers: Sequence[int] = (5, 6, 7, 8),
                    use_rcs: bool = True,
                    use_sfr: bool = True,
                    **_) -> ContextRequest:
    """RCS keeps the attention of ``rcs_layers``; SFR needs the vocabulary."""
    layers = frozenset(
        check_block_index(i, num_blocks, 'resclip rcs_layers entry')
        for i in rcs_layers) if use_rcs else frozenset()
    if use_rcs and not layers:
        raise ValueError('resclip: rcs_layers is empty; name at least one '
                         'block or set use_rcs=False.')
    return ContextRequest(attentions=layers, text=bool(use_sfr))


@register_last_block_mode('resclip')
def resclip_block(block: nn.Module, x: Tensor, grid_hw: Tuple[int, int],
                  context: Optional[TowerContext] = None,
                  gaussian_std: float = 5.0,
                  rcs_layers: Sequence[int] = (5, 6, 7, 8),
                  rcs_weights: Sequence[float] = (2.0, 0.3),
                  sfr_weights: Sequence[float] = (1.8, 0.7),
                  temp_thd: float = 0.3,
                  delete_same_entity: bool = True,
                  use_rcs: bool = True,
                  use_sfr: bool = True,
                  sfr_pamr: Optional[dict] = DEFAULT_SFR_PAMR,
                  base: str = 'naclip',
                  residual: bool = False) -> Tensor:
    """ResCLIP's last block, by default on NACLIP's (no residual, no FFN).

    Args:
        context (TowerContext): Given by the backbone (attentions of
            ``rcs_layers``, the vocabulary, the input image).
        gaussian_std (float): NACLIP's ``Omega`` and SFR's smoothing std.
        rcs_layers (Sequence[int]): The blocks ``S`` of RCS (the code
            hard-codes 5..8, i.e. layers 6-9 of ViT-B/16's 12).
        rcs_weights: ``(tau_r, lambda_r)`` (the code's
            ``attn_rcs_weights``).
        sfr_weights: ``(tau_s, lambda_s)`` (``attn_sfr_weights``).
        temp_thd (float): SFR's probability threshold of a pixel label.
        delete_same_entity (bool): SFR's straight-path decay.
        use_rcs, use_sfr (bool): Switch the two modules (always both on in
            the reference code, whose flags are 1-tuples).
        sfr_pamr (dict, optional): The first pass's PAMR config (None: off).
        base (str): The baseline attention (:data:`BASES`; the code's
            ``attn_strategy``): ``'naclip'`` (the main setting),
            ``'clearclip'``, ``'sclip'`` or ``'vanilla'``.
        residual (bool): Keep the residual and FFN of the block (the code's
            ``arch='w_resi'``; needed by ``'sclip'``, as the code asserts).
    """
    if context is None:
        raise RuntimeError('resclip needs the tower context; run it through '
                           'TrainingFreeCLIPViT.')
    if not 0 <= temp_thd <= 1:
        raise ValueError(f'resclip: temp_thd must be in [0, 1], got '
                         f'{temp_thd}.')
    rcs_weights = _check_pair('rcs_weights', rcs_weights)
    sfr_weights = _check_pair('sfr_weights', sfr_weights)
    if base not in BASES:
        raise ValueError(f'resclip: base={base!r}; use one of {BASES}.')
    if base == 'sclip' and not residual:
        raise ValueError("resclip: base='sclip' keeps the residual (the "
                         "code's arch 'w_resi'); set residual=True.")
    q, k, v = project_qkv(block, x)
    if k.shape[2] != grid_hw[0] * grid_hw[1] + 1:
        raise ValueError(f'resclip: {k.shape[2]} tokens do not match a '
                         f'{grid_hw} patch grid plus the class token.')
    omega = neighbourhood_bias(grid_hw, gaussian_std, k.device, k.dtype) \
        if base == 'naclip' else None

    def block_output(prior: Optional[Tensor]) -> Tensor:
        out = merge_heads(block, resclip_attention(
            q, k, v, omega, rcs, rcs_weights, prior, sfr_weights, base))
        return with_residual_and_mlp(block, x, out) if residual else out

    rcs = None
    if use_rcs:
        num_blocks = len(context.tower.visual.transformer.resblocks)
        layers = sorted({check_block_index(i, num_blocks, 'rcs_layers entry')
                         for i in rcs_layers})
        rcs = torch.stack([context.attentions[i] for i in layers]).mean(0)
        context.record('resclip.rcs_attention', rcs)
    prior = None
    if use_sfr:
        text = context.text
        sims = text.similarities(context.project(block_output(None)))
        pamr = MODELS.build(sfr_pamr) if sfr_pamr else None
        labels = sfr_patch_labels(sims, context.images, text.logit_scale,
                                  temp_thd, context.tower.patch_size, pamr)
        priors = torch.stack([
            sfr_prior(lab, gaussian_std, delete_same_entity)
            for lab in labels
        ])
        context.record('resclip.sfr_labels', labels)
        context.record('resclip.sfr_prior', priors)
        peak = priors.flatten(1).amax(dim=1).clamp(min=1e-12)
        prior = priors / peak[:, None, None]
    return block_output(prior)
