"""CorrCLIP: CLIP's patch correlations reconstructed with masks and a VFM.

Zhang, Liu and Tang, "CorrCLIP: Reconstructing Patch Correlations in CLIP
for Open-Vocabulary Semantic Segmentation", ICCV 2025 (arXiv 2411.10086;
the paper's parts are cited by name below, its equation numbers differ
between the arXiv versions); reproduced from github.com/zdk258/CorrCLIP,
``CorrCLIPv1``
(``open_clip/transformer.py``, ``VisionTransformer.forward``, and
``corrclip_segmentor.py``). It extends ProxyCLIP's proxy backbone
(:class:`~.proxyclip_vit.ProxyCLIPViT`): CLIP's last-block values are
attended with weights computed from a vision foundation model (VFM, DINO
ViT-B/8), but

* **value reconstruction** (the paper's "value reconstruction"): the similarities come
  from the sum of the VFM's last-block *queries and keys*,
  ``f = normalise(q + k)`` (the VFM's ``blocks[-1].attn.qkv`` output, class
  token dropped), ``S = f f^T`` on the VFM's patch grid;
* **scope reconstruction** ("scope reconstruction"): patch pairs in different
  class-agnostic regions do not attend to each other. With ``R_0`` the
  region of the smallest id in the window (the "unsegmented" pixels of the
  published masks) and ``R_1..R_K`` the other regions after *mask merging*,
  ``S_ij`` is kept iff ``i, j`` lie in the same ``R_k`` (k >= 1), or
  ``(i in R_0 or j in R_0) and S_ij > mean(S)``; all other entries are
  ``-inf``. The weights are ``A = softmax(tau S)``, ``tau = 4``;
* **mask merging** (part of the scope reconstruction): regions whose mean VFM features are close
  are merged before the scope is built. With ``g_k`` the normalised mean
  ``f`` of region ``k >= 1`` (when the window has more than two region
  ids), ``D_kl = max(G) - G_kl`` for ``G = g g^T``; regions joined by a
  chain of ``D <= eps`` (``eps = 0.2``) form one region -- DBSCAN with
  ``min_samples = 1`` on the precomputed distance, as the reference code
  calls scikit-learn; :func:`dbscan_min_samples_one` is that clustering
  written out;
* **main, spatial and semantic branches** ("feature refinement"): the output
  is ``ln_post(x_main) + alpha ln_post(x_spatial) + beta ln_post(x_sem)``
  then ``@ proj`` (``alpha = 1``, ``beta = 0.5``), on the VFM grid:

  - ``x_main = O(A v~(x_{L-1}))``: CLIP's last-block values of the tokens
    entering it (class token dropped) resized bilinearly to the VFM grid,
    attended with ``A``, output projection; no residual, no FFN;
  - ``x_spatial = O(A v~(mean_{l in spatial_layers} x_l))``: the same on
    the mean output of lower blocks (ViT-B/16: blocks 5..9 of 0..11);
  - ``x_sem``: one *mask class token* per region of the window on CLIP's
    patch grid, initialised with CLIP's class token after ``ln_pre``, runs
    through every block attending only to the class token and the patches
    of its region (the other tokens do not see it); its last-block output
    (with residual and FFN) is given to every patch of its region.

The masks come from the sample's mask generator (the head's
``mask_refinement``, which also does CorrCLIP's final *map correction*, the
majority vote within each mask): :class:`~mmovss.models.segmentors.
MaskGuidedSegmentor` gives each window its region map at the input
resolution in :attr:`CorrCLIPViT.crop_regions` (nearest-resized from the
original size, as the reference does). Without masks the whole window is
one "unsegmented" region.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.clip_attention import clip_block
from ..utils.mixed_precision import float32_region
from . import tower_context
from .proxyclip_vit import ProxyCLIPViT

__all__ = [
    'CorrCLIPViT', 'dbscan_min_samples_one', 'merge_regions',
    'scope_attention', 'corrclip_spatial_layers'
]

#: Lower blocks of the spatial branch by tower depth (the reference's
#: ``NUM_SPATIAL`` 5 / 12 / 28 for 12 / 24 / 32 blocks: blocks
#: ``L - 2 - n .. L - 3``).
_NUM_SPATIAL = {12: 5, 24: 12, 32: 28}


def corrclip_spatial_layers(num_blocks: int) -> Tuple[int, ...]:
    """The reference's spatial-branch blocks for a tower of ``num_blocks``.

    Blocks ``L - 2 - n .. L - 3`` with ``n`` = 5, 12, 28 for 12, 24, 32
    blocks (ViT-B, ViT-L, ViT-H). Other depths have no published value (the
    reference's fallback ``n = L - 4`` selects no block).
    """
    if num_blocks not in _NUM_SPATIAL:
        raise ValueError(
            f'CorrCLIP has no published spatial-branch layers for a '
            f'{num_blocks}-block ViT; set spatial_layers explicitly.')
    n = _NUM_SPATIAL[num_blocks]
    return tuple(range(num_blocks - 2 - n, num_blocks - 2))


def dbscan_min_samples_one(dist: Tensor, eps: float) -> Tensor:
    """DBSCAN labels for ``min_samples = 1`` on a precomputed distance.

    With one sample per core point every point is a core point, so the
    clusters are the connected components of the graph ``dist <= eps``,
    numbered in the order of their first point (as scikit-learn's
    ``DBSCAN(metric='precomputed', min_samples=1).fit_predict`` numbers
    them).

    Args:
        dist (Tensor): (K, K) distances.
        eps (float): Neighbourhood radius (inclusive).

    Returns:
        Tensor: (K,) int64 cluster labels 0..C-1.
    """
    adj = (dist <= eps).cpu()
    k = adj.shape[0]
    labels = [-1] * k
    current = 0
    for start in range(k):
        if labels[start] >= 0:
            continue
        labels[start] = current
        stack = [start]
        while stack:
            i = stack.pop()
            for j in torch.nonzero(adj[i]).flatten().tolist():
                if labels[j] < 0:
                    labels[j] = current
                    stack.append(j)
        current += 1
    return torch.tensor(labels, dtype=torch.long, device=dist.device)


def merge_regions(groups: Tensor, feats: Tensor, eps: float) -> Tensor:
    """CorrCLIP's mask merging on one window (module docstring).

    Args:
        groups (Tensor): (h, w) int64 region ids 0..K on the VFM grid, 0
            the "unsegmented" region (the window's smallest id).
        feats (Tensor): (h*w, C) normalised VFM features.
        eps (float): DBSCAN radius.

    Returns:
        Tensor: (h, w) ids: 0 kept, the others replaced by ``1 + cluster``.
    """
    num = int(groups.max()) + 1
    if num <= 2:  # the reference merges only with > 2 region ids
        return groups
    flat = groups.flatten()
    sums = feats.new_zeros(num, feats.shape[1]).index_add_(0, flat, feats)
    counts = torch.bincount(flat, minlength=num).to(feats)
    means = F.normalize(sums / counts[:, None], dim=1)[1:]
    sim = means @ means.T
    cluster = dbscan_min_samples_one(sim.max() - sim, eps)
    lut = torch.cat([cluster.new_zeros(1), cluster + 1])
    return lut[groups]


def scope_attention(feats: Tensor, groups: Tensor, tau: float) -> Tensor:
    """``A = softmax(tau S)`` with the reconstructed scope (module docstring).

    Args:
        feats (Tensor): (M, C) normalised VFM features.
        groups (Tensor): (M,) region ids, 0 the "unsegmented" region.
        tau (float): Temperature.

    Returns:
        Tensor: (M, M) attention weights.
    """
    sim = feats @ feats.T
    same = (groups[:, None] == groups[None, :]) & (groups[:, None] > 0)
    free = (groups == 0)
    free = (free[:, None] | free[None, :]) & (sim > sim.mean())
    sim = sim.masked_fill(~(same | free), float('-inf'))
    return F.softmax(sim * tau, dim=-1)


def _window_groups(regions: Optional[Tensor], size: Tuple[int, int],
                   device) -> Tensor:
    """(h, w) ids 0..K of a window's region map resized to ``size``.

    Ids are ranked by value, so 0 is the smallest id of the window (the
    reference's "unsegmented" region, ``torch.unique(...)[0]``).
    """
    if regions is None:
        return torch.zeros(size, dtype=torch.long, device=device)
    resized = F.interpolate(regions[None, None].float(), size=size,
                            mode='nearest')[0, 0]
    _, inverse = torch.unique(resized, return_inverse=True)
    return inverse.to(device)


def _nearest(ids: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(ids[None, None].float(), size=tuple(size),
                         mode='nearest')[0, 0].long()


@MODELS.register_module()
class CorrCLIPViT(ProxyCLIPViT):
    """CLIP ViT with CorrCLIP's reconstructed correlations (docstring above).

    Returns (forward) one (B, embed_dim, H', W') map on the VFM's grid.

    Args:
        tau (float): Temperature of the scope-reconstructed attention (4).
        merge_eps (float): DBSCAN radius of the mask merging (0.2).
        alpha (float): Weight of the spatial branch (1.0).
        beta (float): Weight of the semantic branch (0.5).
        spatial_layers (Sequence[int], optional): Blocks (0..L-2) averaged
            by the spatial branch; None: the reference's choice for 12, 24
            and 32 blocks (:func:`corrclip_spatial_layers`).
        **kwargs: :class:`ProxyCLIPViT` arguments (``vfm``, ``model_name``,
            ``pretrained``, ...); its ``beta``/``gamma`` are not used.
    """

    def __init__(self,
                 tau: float = 4.0,
                 merge_eps: float = 0.2,
                 alpha: float = 1.0,
                 beta: float = 0.5,
                 spatial_layers: Optional[Sequence[int]] = None,
                 **kwargs):
        super().__init__(**kwargs)
        if tau <= 0:
            raise ValueError(f'CorrCLIP tau must be > 0, got {tau}.')
        self.tau = float(tau)
        self.merge_eps = float(merge_eps)
        self.alpha = float(alpha)
        self.corr_beta = float(beta)
        num_blocks = len(self.visual.transformer.resblocks)
        if spatial_layers is None:
            spatial_layers = corrclip_spatial_layers(num_blocks)
        layers = tuple(int(i) for i in spatial_layers)
        if not layers or not all(0 <= i < num_blocks - 1 for i in layers):
            raise ValueError(
                f'spatial_layers={tuple(spatial_layers)} must be a non-empty '
                f'list of blocks 0..{num_blocks - 2} of this '
                f'{num_blocks}-block ViT.')
        self.spatial_layers = layers
        #: (B, H, W) region ids of the windows being encoded, at the input
        #: resolution (set by MaskGuidedSegmentor; None: no masks).
        self.crop_regions: Optional[Tensor] = None

    def vfm_qk_features(self, inputs: Tensor) -> Tuple[Tensor, tuple]:
        """Normalised ``q + k`` of the VFM's last block: (B, h*w, C'), grid.

        The sum of the query and key parts of ``blocks[-1].attn.qkv``
        (heads concatenated), class token dropped, L2-normalised.
        """
        vit = self.vfm
        x, grid_hw = self.vfm_tokens(inputs)
        for block in vit.blocks[:-1]:
            x = block(x)
        last = vit.blocks[-1]
        qkv = last.attn.qkv(last.norm1(x))
        q, k, _ = qkv.chunk(3, dim=-1)
        return F.normalize((q + k)[:, 1:].float(), dim=-1), grid_hw

    def _semantic_tokens(self, x: Tensor, groups: Tensor) -> Tensor:
        """Mask class tokens through every block: (R, C), one per region.

        ``x`` (1 + h*w, C) the tokens after ``ln_pre``, ``groups`` (h, w)
        region ids 0..R-1 on CLIP's grid.
        """
        num = int(groups.max()) + 1
        n = x.shape[0]
        allowed = torch.zeros(num + n, num + n, dtype=torch.bool,
                              device=x.device)
        allowed[num:, num:] = True
        allowed[:num, num] = True  # the class token
        allowed[:num, num + 1:] = groups.flatten()[None, :] == torch.arange(
            num, device=x.device)[:, None]
        mask = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device)
        mask = mask.masked_fill(~allowed, float('-inf'))
        seq = torch.cat([x[:1].expand(num, -1), x])[None]
        for block in self.visual.transformer.resblocks:
            seq = clip_block(block, seq, attn_mask=mask)
        return seq[0, :num]

    def _value_attention(self, block, x: Tensor, grid_hw: Tuple[int, int],
                         out_hw: Tuple[int, int], weights: Tensor) -> Tensor:
        """``O(A v~)``: (B, 1 + h*w, C) tokens -> (B, M, C) on the VFM grid."""
        attn = block.attn
        c = attn.embed_dim
        bias = attn.in_proj_bias
        v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * c:],
                     None if bias is None else bias[2 * c:])[:, 1:]
        v = v.transpose(1, 2).reshape(v.shape[0], c, *grid_hw)
        v = F.interpolate(v, size=out_hw, mode='bilinear',
                          align_corners=False)
        v = v.flatten(2).transpose(1, 2)
        return attn.out_proj(torch.matmul(weights.to(v.dtype), v))

    def forward(self, inputs: Tensor) -> Tuple[Tensor]:
        """Dense embeddings (B, D, H', W') on the VFM grid.

        Inside :func:`~.tower_context.record_stages` it stores, per window
        (stacked over the batch): ``corrclip.vfm_features`` (B, M, C'),
        ``corrclip.groups`` (B, H', W') merged region ids (0 the
        "unsegmented" region), ``corrclip.attention`` (B, M, M) and
        ``corrclip.branches`` (B, 3, M, D): main, spatial and semantic
        branch after ``ln_post``, each ``@ proj``.
        """
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'CorrCLIPViT expects (B, 3, H, W) images, got '
                             f'{tuple(inputs.shape)}.')
        regions = self.crop_regions
        if regions is not None and (regions.shape[0] != inputs.shape[0] or
                                    regions.shape[1:] != inputs.shape[2:]):
            raise ValueError(
                f'CorrCLIPViT.crop_regions {tuple(regions.shape)} do not '
                f'match the windows {tuple(inputs.shape)}; they are set by '
                f'MaskGuidedSegmentor for each batch of windows.')
        feats, vfm_hw = self.vfm_qk_features(inputs)
        tokens, grid_hw = self.embed(inputs)
        blocks = self.visual.transformer.resblocks
        x = tokens
        spatial = []
        for i, block in enumerate(blocks[:-1]):
            x = clip_block(block, x)
            if i in self.spatial_layers:
                spatial.append(x)
        x_spatial = torch.stack(spatial).mean(0)
        recording = tower_context._RECORDING[0]  # record_stages()
        stages = dict(groups=[], attention=[], branches=[])
        outs = []
        for b in range(inputs.shape[0]):
            groups = _window_groups(None if regions is None else regions[b],
                                    vfm_hw, inputs.device)
            groups = merge_regions(groups, feats[b], self.merge_eps)
            weights = scope_attention(feats[b], groups.flatten(), self.tau)
            # semantic branch: the merged regions on CLIP's patch grid
            _, clip_groups = torch.unique(_nearest(groups, grid_hw),
                                          return_inverse=True)
            mct = self._semantic_tokens(tokens[b], clip_groups)
            x_sem = mct[_nearest(clip_groups, vfm_hw).flatten()]
            pair = torch.stack([x[b], x_spatial[b]])
            x_main, x_spa = self._value_attention(blocks[-1], pair, grid_hw,
                                                  vfm_hw, weights)
            outs.append((x_main, x_spa, x_sem))
            stages['groups'].append(groups)
            stages['attention'].append(weights)
        proj = self.visual.proj
        ln_post = self.visual.ln_post
        dense = []
        with float32_region(inputs.device.type):
            for x_main, x_spa, x_sem in outs:
                main, spa, sem = (ln_post(t.to(proj.dtype))
                                  for t in (x_main, x_spa, x_sem))
                fused = main + self.alpha * spa + self.corr_beta * sem
                dense.append(fused @ proj)
                if recording is not None:
                    stages['branches'].append(
                        torch.stack([main, spa, sem]) @ proj)
        if recording is not None:
            recording['corrclip.vfm_features'] = feats.detach()
            for name, values in stages.items():
                recording[f'corrclip.{name}'] = torch.stack(values).detach()
        return (self._to_map(torch.stack(dense), vfm_hw, with_cls=False), )
