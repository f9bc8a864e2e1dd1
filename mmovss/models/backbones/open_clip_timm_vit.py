"""open_clip image towers built on timm (EVA02-CLIP, SigLIP, SigLIP 2) as
dense training-free backbones.

open_clip builds these towers as a ``TimmModel``: a timm trunk (``Eva`` for
EVA02-CLIP, ``VisionTransformer`` for SigLIP / SigLIP 2) whose pooling and
classifier head are CLIP's image projection, plus an (often empty) adapter
head. :class:`OpenCLIPTimmViT` runs such a tower on the patch grid of an
image of any size and returns

* the outputs of the chosen blocks as (B, width, h, w) maps, and
* dense embeddings in CLIP's joint space, (B, embed_dim, h, w).

Pieces, in the order of timm's ``forward_features`` / ``forward_head``
(``timm/models/eva.py`` ``Eva._pos_embed``; ``vision_transformer.py``
``VisionTransformer._pos_embed``):

1. patch embedding (the trunk's ``patch_embed.proj`` convolution, flatten,
   ``patch_embed.norm``); incomplete border patches dropped or zero-padded;
2. class / register tokens and absolute position embeddings resized to the
   grid (the patch part only; prefix positions kept), as
   :class:`~.training_free_vit.TrainingFreeCLIPViT` does (``'scale_factor'``:
   DINO's resize copied by the published training-free codes; ``'size'``:
   bicubic to the exact grid); EVA02's rotary embedding (RoPE) is computed
   for the grid by the trunk's own ``rope.get_embed(shape=(h, w))``;
3. ``norm_pre``, the blocks, and the last block computed by a training-free
   mode of :data:`TIMM_LAST_BLOCK_MODES` on timm's attention (fused ``qkv``
   or separate ``q/k/v_proj`` with EVA's ``q_bias``/``v_bias``, ``q_norm`` /
   ``k_norm``, RoPE on the patch tokens, the inner ``norm`` of EVA02's
   scaled attention, layer scale ``ls1`` / ``gamma_1``);
4. the final ``norm``, then every patch token through the tower's pooling
   head *on its own*: ``head(fc_norm(pool([x_p])))`` followed by open_clip's
   adapter head. For token pooling (EVA02-CLIP) this is ``head(x_p)``; for
   SigLIP's attention pooling (MAP, a learned latent query) a single key
   makes the attention weight 1, so the token goes through the value path,
   the output projection and the pooling MLP. This is MaskCLIP's argument for
   CLIP's attention pool (Zhou et al., ECCV 2022, Sec. 3.2: the value
   embedding and the last linear layer applied per position).

The vanilla pooled output (:meth:`OpenCLIPTimmViT.encode_pooled`) is the
trunk's own ``forward_head`` on the final tokens, i.e. open_clip's
``encode_image`` at the tower's native size (``tests/test_timm_towers.py``).

Supported last-block modes: ``vanilla``, ``vanilla_noresidual``,
``maskclip``, ``maskclip_noresidual``, ``sclip``, ``clearclip``, ``naclip``
(the formulas of :mod:`.training_free_modes`, with prefix tokens in place of
the single class token: SigLIP has none). On EVA02 the queries and keys of
the self-self attentions (``q q^T``, ``k k^T``) are taken after RoPE, as the
block's own attention takes them.
"""
import inspect
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.open_clip_weights import build_open_clip
from ..utils.trainable_params import PretrainedTower
from .training_free_modes import neighbourhood_bias, softmax_attention
from .training_free_vit import check_grid_options, resize_pos_embed_by_scale

__all__ = [
    'OpenCLIPTimmViT', 'TIMM_LAST_BLOCK_MODES', 'timm_create_kwargs',
    'timm_qkv', 'timm_merge_heads', 'timm_residual_and_mlp'
]

#: Last-block computations on timm blocks by name:
#: ``fn(block, x, grid_hw, rope, num_prefix_tokens, **options) -> x`` with
#: ``x`` the (B, npt + h*w, C) tokens (prefix tokens first).
TIMM_LAST_BLOCK_MODES: Dict[str, Callable] = {}


def _register(name: str):

    def wrap(fn: Callable) -> Callable:
        TIMM_LAST_BLOCK_MODES[name] = fn
        return fn

    return wrap


@contextmanager
def timm_create_kwargs(kwargs: Optional[dict]) -> Iterator[None]:
    """Adds keyword arguments to every ``timm.create_model`` in the context.

    open_clip's ``TimmModel`` passes only the model name, pool, classes and
    drop rates to timm; this narrows a named tower (``embed_dim``,
    ``depth``, ``num_heads``, ``img_size``) for tests and benchmarks while
    keeping its architecture.
    """
    if not kwargs:
        yield
        return
    import timm
    original = timm.create_model

    def create_model(model_name, *args, **kw):
        return original(model_name, *args, **{**kw, **kwargs})

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = original


def _rope_of(block: nn.Module) -> bool:
    return 'rope' in inspect.signature(block.forward).parameters


def _check_block(block: nn.Module):
    attn = getattr(block, 'attn', None)
    if attn is None or not hasattr(block, 'norm1') or \
            not hasattr(block, 'norm2') or not hasattr(attn, 'proj'):
        raise TypeError(
            f'Training-free modes on timm towers need a pre-norm block with '
            f'norm1 / attn / norm2 / mlp (timm Block, EvaBlock); got '
            f'{type(block).__name__}. Use last_block_mode=\'vanilla\'.')
    if getattr(attn, 'num_kv_heads', attn.num_heads) != attn.num_heads:
        raise NotImplementedError(
            'Grouped-query attention (num_kv_heads != num_heads) is not '
            'supported by the training-free modes.')
    return attn


def timm_qkv(block: nn.Module, x: Tensor, rope: Optional[Tensor],
             num_prefix_tokens: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-head ``q, k, v`` of ``norm1(x)`` as timm's attention forms them.

    ``qkv`` fused (``VisionTransformer``'s ``Attention``) or ``q_proj`` /
    ``k_proj`` / ``v_proj`` (EVA02-CLIP), EVA's ``q_bias``/``k_bias``/
    ``v_bias``, then ``q_norm`` / ``k_norm`` and RoPE on the patch tokens
    (``timm/models/eva.py`` ``EvaAttention.forward``).

    Returns:
        tuple[Tensor]: (B, heads, N, d) each.
    """
    from timm.layers import apply_rot_embed_cat
    attn = _check_block(block)
    y = block.norm1(x)
    b, n, _ = y.shape
    heads = attn.num_heads
    if getattr(attn, 'qkv', None) is not None:
        if getattr(attn, 'q_bias', None) is not None:
            bias = torch.cat((attn.q_bias, attn.k_bias, attn.v_bias))
            qkv = F.linear(y, attn.qkv.weight, bias)
        else:
            qkv = attn.qkv(y)
        q, k, v = qkv.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    else:
        q, k, v = (getattr(attn, f'{t}_proj')(y).reshape(b, n, heads, -1)
                   .transpose(1, 2) for t in 'qkv')
    q, k = attn.q_norm(q), attn.k_norm(k)
    if rope is not None:
        npt = num_prefix_tokens
        half = getattr(attn, 'rotate_half', False)
        q = torch.cat([q[:, :, :npt], apply_rot_embed_cat(
            q[:, :, npt:], rope, half=half)], dim=2).type_as(v)
        k = torch.cat([k[:, :, :npt], apply_rot_embed_cat(
            k[:, :, npt:], rope, half=half)], dim=2).type_as(v)
    return q, k, v


def timm_merge_heads(block: nn.Module, out: Tensor,
                     gate_input: Optional[Tensor] = None) -> Tensor:
    """(B, h, N, d) -> layer-scaled attention output (B, N, C).

    timm's tail of the attention: heads merged, the inner ``norm`` (EVA02's
    ``scale_attn_inner``), the optional sigmoid ``gate`` (of ``norm1(x)``,
    ``gate_input``), ``proj``; then the block's layer scale (``ls1`` or
    ``gamma_1``).
    """
    attn = block.attn
    b, h, n, d = out.shape
    out = out.transpose(1, 2).reshape(b, n, h * d)
    out = attn.norm(out) if hasattr(attn, 'norm') else out
    if getattr(attn, 'gate', None) is not None:
        out = out * attn.gate(block.norm1(gate_input)).sigmoid()
    out = attn.proj(out)
    if hasattr(block, 'ls1'):
        return block.ls1(out)
    gamma = getattr(block, 'gamma_1', None)
    return out if gamma is None else gamma * out


def timm_residual_and_mlp(block: nn.Module, x: Tensor,
                          attn_out: Tensor) -> Tensor:
    """``x' = x + attn_out``; ``x' + ls2(mlp(norm2(x')))`` (timm pre-norm)."""
    x = x + attn_out
    mlp = block.mlp(block.norm2(x))
    if hasattr(block, 'ls2'):
        mlp = block.ls2(mlp)
    elif getattr(block, 'gamma_2', None) is not None:
        mlp = block.gamma_2 * mlp
    return x + mlp


def _scale(block: nn.Module, q: Tensor) -> float:
    return float(getattr(block.attn, 'scale', q.shape[-1]**-0.5))


@_register('vanilla')
def _vanilla(block, x, grid_hw, rope, num_prefix_tokens):
    """The block itself (timm's forward)."""
    return block(x, rope=rope) if _rope_of(block) else block(x)


@_register('vanilla_noresidual')
def _vanilla_noresidual(block, x, grid_hw, rope, num_prefix_tokens):
    """``O(softmax(q k^T s) v)`` alone."""
    q, k, v = timm_qkv(block, x, rope, num_prefix_tokens)
    return timm_merge_heads(block, softmax_attention(q, k, v, _scale(block, q)), x)


@_register('maskclip')
def _maskclip(block, x, grid_hw, rope, num_prefix_tokens):
    """MaskCLIP: ``x + O(v)``, then the FFN (Zhou et al., ECCV 2022)."""
    _, _, v = timm_qkv(block, x, rope, num_prefix_tokens)
    return timm_residual_and_mlp(block, x, timm_merge_heads(block, v, x))


@_register('maskclip_noresidual')
def _maskclip_noresidual(block, x, grid_hw, rope, num_prefix_tokens):
    """MaskCLIP's value path ``O(v)`` alone."""
    _, _, v = timm_qkv(block, x, rope, num_prefix_tokens)
    return timm_merge_heads(block, v, x)


@_register('sclip')
def _sclip(block, x, grid_hw, rope, num_prefix_tokens):
    """SCLIP: ``x + O((softmax(q q^T s) + softmax(k k^T s)) v)``, FFN kept
    (Wang et al., ECCV 2024, Eq. 5)."""
    q, k, v = timm_qkv(block, x, rope, num_prefix_tokens)
    s = _scale(block, q)
    out = softmax_attention(q, q, v, s) + softmax_attention(k, k, v, s)
    return timm_residual_and_mlp(block, x, timm_merge_heads(block, out, x))


@_register('clearclip')
def _clearclip(block, x, grid_hw, rope, num_prefix_tokens):
    """ClearCLIP: ``O(softmax(q q^T s) v)``, no residual, no FFN (Lan et
    al., ECCV 2024, Sec. 4)."""
    q, _, v = timm_qkv(block, x, rope, num_prefix_tokens)
    return timm_merge_heads(
        block, softmax_attention(q, q, v, _scale(block, q)), x)


def prefixed_neighbourhood_bias(grid_hw: Tuple[int, int], std: float,
                                num_prefix_tokens: int, device=None,
                                dtype=None) -> Tensor:
    """NACLIP's ``Omega`` (:func:`.neighbourhood_bias`) for ``npt`` prefix
    tokens: (npt + h*w)^2, zero in the prefix rows and columns."""
    omega = neighbourhood_bias(grid_hw, std, device, dtype)[1:, 1:]
    if num_prefix_tokens:
        omega = F.pad(omega, (num_prefix_tokens, 0, num_prefix_tokens, 0))
    return omega


@_register('naclip')
def _naclip(block, x, grid_hw, rope, num_prefix_tokens,
            gaussian_std: float = 5.0):
    """NACLIP: ``O(softmax(k k^T s + Omega) v)``, no residual, no FFN
    (Hajimiri et al., WACV 2025, Eq. 6-8)."""
    _, k, v = timm_qkv(block, x, rope, num_prefix_tokens)
    if k.shape[2] != grid_hw[0] * grid_hw[1] + num_prefix_tokens:
        raise ValueError(
            f'naclip: {k.shape[2]} tokens do not match a {grid_hw} patch grid '
            f'plus {num_prefix_tokens} prefix tokens.')
    omega = prefixed_neighbourhood_bias(grid_hw, gaussian_std,
                                        num_prefix_tokens, k.device, k.dtype)
    return timm_merge_heads(
        block, softmax_attention(k, k, v, _scale(block, k), omega), x)


@MODELS.register_module()
class OpenCLIPTimmViT(PretrainedTower):
    """Dense features and joint-space embeddings from an open_clip timm tower.

    Args:
        model_name (str, optional): open_clip model whose image tower is a
            timm ViT, e.g. ``'EVA02-B-16'``, ``'ViT-B-16-SigLIP'``,
            ``'ViT-B-16-SigLIP2'``.
        pretrained (str, optional): open_clip pretrained tag or a local
            checkpoint file; None: random weights.
        model_cfg (dict, optional): open_clip model-config dict instead of
            ``model_name`` (tests).
        timm_model_kwargs (dict, optional): Extra ``timm.create_model``
            arguments for the trunk (narrowed test towers: ``embed_dim``,
            ``depth``, ``num_heads``, ``img_size``); see
            :func:`timm_create_kwargs`.
        out_indices (Sequence[int]): Blocks whose outputs are returned as
            maps (negative indices count from the end).
        last_block_mode (str): A mode of :data:`TIMM_LAST_BLOCK_MODES`.
        last_block_options (dict, optional): Keyword options of the mode,
            e.g. ``dict(gaussian_std=5.0)`` for ``'naclip'``.
        pos_embed_resize (str): ``'scale_factor'`` (the published
            training-free codes, default) or ``'size'``.
        incomplete_patches (str): ``'drop'`` (default) or ``'pad'``.
        frozen (bool): Freeze the tower (default).
        eval_mode (bool): Keep the tower in eval mode during training.
        download_cache_dir (str, optional): open_clip's download cache.
        init_cfg (dict, optional): mmengine init config.

    Returns (forward):
        tuple[Tensor]: One (B, width, h, w) map per ``out_indices`` entry,
        then the (B, embed_dim, h, w) dense embeddings.
    """

    def __init__(self,
                 model_name: Optional[str] = 'EVA02-B-16',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[dict] = None,
                 timm_model_kwargs: Optional[dict] = None,
                 out_indices: Sequence[int] = (),
                 last_block_mode: str = 'vanilla',
                 last_block_options: Optional[dict] = None,
                 pos_embed_resize: str = 'scale_factor',
                 incomplete_patches: str = 'drop',
                 frozen: bool = True,
                 eval_mode: bool = True,
                 download_cache_dir: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg)
        if model_cfg is not None:
            model_name = None
        with timm_create_kwargs(timm_model_kwargs):
            clip, self.weights_identity = build_open_clip(
                model_name, pretrained, model_cfg, None, download_cache_dir)
        visual = clip.visual
        trunk = getattr(visual, 'trunk', None)
        if trunk is None or not hasattr(trunk, 'blocks') or \
                not hasattr(trunk, 'patch_embed'):
            raise ValueError(
                f'OpenCLIPTimmViT needs an open_clip tower built on a timm '
                f'ViT (EVA02-CLIP, SigLIP); {clip.model_label} has '
                f'{type(visual).__name__}. Use OpenCLIPViT / '
                f'TrainingFreeCLIPViT for open_clip\'s own ViTs.')
        if any(isinstance(m, nn.Module) and name == 'pool'
               for name, m in visual.head.named_children()):
            raise NotImplementedError(
                'open_clip timm towers with abs_attn / rot_attn pooling '
                '(convolutional trunks) are not supported.')
        if getattr(trunk, 'rope_mixed', False):
            raise NotImplementedError('Depth-dependent (mixed) RoPE is not '
                                      'supported.')
        self.visual = visual
        del clip
        check_grid_options(pos_embed_resize, incomplete_patches)
        self.pos_embed_resize = pos_embed_resize
        self.incomplete_patches = incomplete_patches
        self.patch_size = tuple(trunk.patch_embed.patch_size)
        self.width = trunk.embed_dim
        self.num_prefix_tokens = int(getattr(trunk, 'num_prefix_tokens', 0))
        num_blocks = len(trunk.blocks)
        self.out_indices = tuple(
            self._check_index(i, num_blocks) for i in out_indices)
        self.last_block_mode = last_block_mode
        self.last_block_options = dict(last_block_options or {})
        self._check_mode(last_block_mode, self.last_block_options)
        self._pos_cache: Dict[tuple, Tensor] = {}
        self.set_trainable(frozen, (), eval_mode)
        self.visual.eval()

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """Channels of the forward's outputs: ``width`` per ``out_indices``
        entry, then the joint dimension (:meth:`project_dense` on one token)."""
        weight = next(self.visual.parameters())
        with torch.no_grad():
            tokens = weight.new_zeros(1, self.num_prefix_tokens + 1, self.width)
            embed_dim = self.project_dense(tokens, (1, 1)).shape[1]
        return (self.width, ) * len(self.out_indices) + (embed_dim, )

    @property
    def trunk(self) -> nn.Module:
        """The timm model."""
        return self.visual.trunk

    @staticmethod
    def _check_index(index: int, num_blocks: int) -> int:
        if not -num_blocks <= index < num_blocks:
            raise ValueError(f'out_indices entry {index} is outside the '
                             f'{num_blocks} blocks of the ViT.')
        return index % num_blocks

    @staticmethod
    def _check_mode(mode: str, options: dict):
        if mode not in TIMM_LAST_BLOCK_MODES:
            raise KeyError(
                f'last_block_mode {mode!r} is not available on timm towers; '
                f'supported: {sorted(TIMM_LAST_BLOCK_MODES)}.')
        try:
            inspect.signature(TIMM_LAST_BLOCK_MODES[mode]).bind(
                None, None, None, None, 0, **options)
        except TypeError as e:
            raise TypeError(
                f'last_block_options {options} do not fit last_block_mode '
                f'{mode!r} ({e}).') from None

    # ------------------------------------------------------------ pieces
    def _resized_patch_pos(self, grid_hw: Tuple[int, int]) -> Tensor:
        """(npt_pos + h*w, C) absolute position embeddings for a grid."""
        trunk = self.trunk
        pos = trunk.pos_embed[0]
        src = tuple(trunk.patch_embed.grid_size)
        if tuple(grid_hw) == src:
            return pos
        key = (tuple(grid_hw), self.pos_embed_resize, pos.device, pos.dtype,
               pos._version)
        if not pos.requires_grad and key in self._pos_cache:
            return self._pos_cache[key]
        npt = 0 if getattr(trunk, 'no_embed_class', False) \
            else self.num_prefix_tokens
        prefix, patch = pos[:npt], pos[npt:]
        if self.pos_embed_resize == 'scale_factor':
            dummy = patch.new_zeros(1, patch.shape[1])
            patch = resize_pos_embed_by_scale(
                torch.cat([dummy, patch]), src, tuple(grid_hw))[1:]
        else:
            patch = patch.reshape(1, src[0], src[1], -1).permute(0, 3, 1, 2)
            patch = F.interpolate(patch, size=tuple(grid_hw), mode='bicubic',
                                  align_corners=False)
            patch = patch.permute(0, 2, 3, 1).reshape(-1, pos.shape[1])
        resized = torch.cat([prefix, patch])
        if not pos.requires_grad:
            self._pos_cache = {key: resized}
        return resized

    @staticmethod
    def _rope_for_grid(rope: nn.Module, grid_hw: Tuple[int, int]) -> Tensor:
        """The RoPE sin/cos embedding (h*w, 2 dim) of a grid.

        The trunk's cached embedding at its own grid; else built from the
        cached frequency bands for the grid, as timm's ``dynamic_img_size``
        path does (``RotaryEmbeddingCat.get_embed(shape)``, coordinates
        rescaled to ``ref_feat_shape``).
        """
        feat_shape = getattr(rope, 'feat_shape', None)
        if feat_shape is not None and tuple(feat_shape) == tuple(grid_hw):
            return rope.get_embed()
        if getattr(rope, '_use_cached_embed', False):
            return rope._build_embed_cat(list(grid_hw), rope.bands)
        return rope.get_embed(shape=list(grid_hw))

    def embed(self, x: Tensor
              ) -> Tuple[Tensor, Tuple[int, int], Optional[Tensor]]:
        """Patch embedding, prefix tokens, position embeddings, ``norm_pre``.

        Returns:
            tuple: tokens (B, npt + h*w, C), the grid ``(h, w)``, and the
            RoPE embedding of the grid (None without RoPE).
        """
        ph, pw = self.patch_size
        if self.incomplete_patches == 'drop':
            h, w = x.shape[2] // ph * ph, x.shape[3] // pw * pw
            if h == 0 or w == 0:
                raise ValueError(
                    f'OpenCLIPTimmViT: image {tuple(x.shape[2:])} is smaller '
                    f'than one {self.patch_size} patch.')
            x = x[:, :, :h, :w]
        else:
            x = F.pad(x, (0, (-x.shape[3]) % pw, 0, (-x.shape[2]) % ph))
        trunk = self.trunk
        pe = trunk.patch_embed
        x = pe.proj(x.to(pe.proj.weight.dtype))
        grid_hw = (x.shape[2], x.shape[3])
        x = pe.norm(x.flatten(2).transpose(1, 2))
        pos = None
        if getattr(trunk, 'pos_embed', None) is not None:
            pos = self._resized_patch_pos(grid_hw).to(x.dtype).unsqueeze(0)
        to_cat = [t.expand(x.shape[0], -1, -1).to(x.dtype)
                  for t in (getattr(trunk, 'cls_token', None),
                            getattr(trunk, 'reg_token', None))
                  if t is not None]
        if getattr(trunk, 'no_embed_class', False):
            x = x + pos if pos is not None else x
            x = torch.cat(to_cat + [x], dim=1)
        else:
            x = torch.cat(to_cat + [x], dim=1)
            x = x + pos if pos is not None else x
        x = trunk.pos_drop(x)
        rope = None
        if getattr(trunk, 'rope', None) is not None:
            rope = self._rope_for_grid(trunk.rope, grid_hw)
        return trunk.norm_pre(x), grid_hw, rope

    def forward_last_block(self, block: nn.Module, x: Tensor,
                           grid_hw: Tuple[int, int],
                           rope: Optional[Tensor]) -> Tensor:
        """The last block, computed by the ``last_block_mode`` function."""
        self._check_mode(self.last_block_mode, self.last_block_options)
        return TIMM_LAST_BLOCK_MODES[self.last_block_mode](
            block, x, grid_hw, rope, self.num_prefix_tokens,
            **self.last_block_options)

    def forward_tokens(self, inputs: Tensor
                       ) -> Tuple[Tensor, Tuple[int, int], Dict[int, Tensor]]:
        """Embedding and blocks: (final tokens, grid, {index: block map})."""
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'OpenCLIPTimmViT expects (B, 3, H, W) images, '
                             f'got {tuple(inputs.shape)}.')
        x, grid_hw, rope = self.embed(inputs)
        blocks = self.trunk.blocks
        last = len(blocks) - 1
        maps = {}
        for i, block in enumerate(blocks):
            if i < last:
                x = block(x, rope=rope) if _rope_of(block) else block(x)
            else:
                x = self.forward_last_block(block, x, grid_hw, rope)
            if i in self.out_indices:
                maps[i] = self._to_map(x, grid_hw)
        return x, grid_hw, maps

    def _to_map(self, x: Tensor, grid_hw: Tuple[int, int]) -> Tensor:
        x = x[:, self.num_prefix_tokens:]
        b, _, c = x.shape
        return x.transpose(1, 2).reshape(b, c, grid_hw[0], grid_hw[1])

    def _head(self, pooled: Tensor) -> Tensor:
        trunk = self.trunk
        pooled = trunk.fc_norm(pooled)
        pooled = trunk.head_drop(pooled)
        return self.visual.head(trunk.head(pooled))

    def project_dense(self, x: Tensor, grid_hw: Tuple[int, int]) -> Tensor:
        """Final ``norm``, then each patch token through the pooling head on
        its own (see the module docstring) -> (B, D, h, w)."""
        trunk = self.trunk
        tokens = trunk.norm(x)[:, self.num_prefix_tokens:]
        b, n, c = tokens.shape
        single = tokens.reshape(b * n, 1, c)
        if getattr(trunk, 'attn_pool', None) is not None:
            pooled = trunk.attn_pool(single)
        else:  # token / avg / max pooling of one token is the token
            pooled = single[:, 0]
        dense = self._head(pooled).reshape(b, n, -1)
        return dense.transpose(1, 2).reshape(b, -1, grid_hw[0], grid_hw[1])

    def encode_pooled(self, inputs: Tensor) -> Tensor:
        """The tower's pooled image embedding (B, D): final ``norm`` and the
        trunk's ``forward_head`` (its pool), then open_clip's adapter head.

        With ``last_block_mode='vanilla'`` at the tower's native size this is
        open_clip's ``encode_image`` (unnormalised).
        """
        x, _, _ = self.forward_tokens(inputs)
        pooled = self.trunk.forward_head(self.trunk.norm(x), pre_logits=True)
        return self.visual.head(self.trunk.head(pooled))

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        x, grid_hw, maps = self.forward_tokens(inputs)
        outs = [maps[i] for i in self.out_indices]
        outs.append(self.project_dense(x, grid_hw))
        return tuple(outs)
