"""ProxyCLIP: CLIP's value path attended with a vision foundation model.

Lan et al., "ProxyCLIP: Proxy Attention Improves CLIP for Open-Vocabulary
Segmentation", ECCV 2024, Sec. 3.2, Eq. 3-5. In CLIP's last block the
attention weights come from the normalised patch features ``f`` of a vision
foundation model (VFM; DINO ViT-B/8 by default), on the VFM's patch grid:

    S = f^T f                                  (cosine similarities, M x M)
    S' = gamma * (S - beta * mean(S)),  S'[S' < 0] = -inf
    out = O(softmax(S') v~)

where ``v~`` are CLIP's last-block values (class token dropped) resized
bilinearly to the VFM grid and ``O`` the output projection; no residual, no
FFN; then ``ln_post`` and ``proj``. The mean is taken per image (the
published code runs one window at a time).

The VFM is any timm ViT with a class token (``vit_base_patch8_224.dino``
by default), loaded from timm's hub (``pretrained=True``), a local weight
file (timm/DINO state dict, ``.pth``/``.safetensors``; DINO training
checkpoints' ``teacher`` weights are recognised), or left random
(``pretrained=None``, tests). It sees the image renormalised from CLIP's
mean/std to its own, and its position embeddings are resized as DINO does
(:func:`resize_pos_embed_by_scale`).
"""
import os
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..utils.clip_attention import clip_block
from ..utils.mixed_precision import float32_region
from ..utils.open_clip_weights import WeightFileError, _host_reachable
from .training_free_modes import attend, project_qkv
from .training_free_vit import TrainingFreeCLIPViT, resize_pos_embed_by_scale

__all__ = ['ProxyCLIPViT', 'build_timm_vfm', 'proxy_attention']

#: CLIP's normalisation as used by the published training-free codes.
CLIP_MEAN = (122.771, 116.746, 104.094)
CLIP_STD = (68.501, 66.632, 70.323)


def _read_state_dict(path: str) -> dict:
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        state = load_file(path, device='cpu')
    else:
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:  # truncated, not a checkpoint, code in the pickle
            raise WeightFileError(
                f'Cannot read VFM weight file {path!r} with torch.load(weights_only=True) '
                f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}); pass a '
                f'timm/DINO state dict (.pth or .safetensors).') from e
    for key in ('state_dict', 'model', 'teacher'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not state:
        raise WeightFileError(f'VFM weight file {path!r} holds no state dict.')
    for prefix in ('module.', 'backbone.'):
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith('head')}


def _timm_weights_offline_reason(model_name: str) -> Optional[str]:
    """Why timm's Hugging Face weights of ``model_name`` cannot be had, or None.

    None when they are cached, timm would not take them from the Hub, or
    huggingface.co answers; otherwise the reason (``HF_HUB_OFFLINE`` is set, or
    the host is unreachable), found without waiting for the hub's retries.
    """
    try:
        from huggingface_hub import try_to_load_from_cache
        from timm.models import get_pretrained_cfg
        cfg = get_pretrained_cfg(model_name)
    except Exception:  # an old timm / hub, or a name timm resolves itself
        return None
    hub_id = getattr(cfg, 'hf_hub_id', None) if cfg is not None else None
    if not hub_id:
        return None
    hub_id = hub_id.split('@')[0]
    for filename in ('model.safetensors', 'open_clip_model.safetensors',
                     'pytorch_model.bin', 'open_clip_pytorch_model.bin'):
        found = try_to_load_from_cache(hub_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return None
    if os.environ.get('HF_HUB_OFFLINE', '0').lower() in ('1', 'true', 'yes'):
        return 'not in the local cache and HF_HUB_OFFLINE is set'
    reachable, reason = _host_reachable('huggingface.co')
    return None if reachable else f'not in the local cache and {reason}'


def build_timm_vfm(model_name: str = 'vit_base_patch8_224.dino',
                   pretrained: Union[bool, str, None] = True,
                   model_kwargs: Optional[dict] = None) -> nn.Module:
    """Builds a frozen timm ViT as ProxyCLIP's vision foundation model.

    Args:
        model_name (str): A timm ViT name, e.g. ``'vit_base_patch8_224.dino'``
            (DINO ViT-B/8), ``'vit_small_patch8_224.dino'``.
        pretrained (bool | str | None): True: timm's weights of the name
            (downloaded by timm); a path: a local weight file (a timm/DINO
            state dict, or an OpenAI/open_clip CLIP whose ``visual.*`` keys
            timm converts, for a ``vit_*_clip_*`` name; its projection is
            dropped); None/False: random (tests).
        model_kwargs (dict, optional): Extra ``timm.create_model`` arguments
            (e.g. a tiny ``embed_dim``/``depth`` in tests).
    """
    try:
        import timm
    except ImportError as e:  # pragma: no cover - timm is an open_clip dep
        raise ImportError('ProxyCLIP needs timm (pip install timm).') from e
    kwargs = dict(model_kwargs or {})
    kwargs.setdefault('num_classes', 0)
    from_file = isinstance(pretrained, (str, os.PathLike))
    if from_file and not os.path.isfile(pretrained):
        raise FileNotFoundError(
            f'VFM weight file not found: {pretrained!r}; give a local '
            f'timm/DINO state dict, pretrained=True for timm\'s weights, or '
            f'None for random weights.')
    if pretrained is True:
        def unavailable(reason):
            return WeightFileError(
                f"Cannot get timm's pretrained weights of {model_name!r} "
                f'({reason}). Offline, download them once '
                f'elsewhere and pass the file, e.g. --cfg-options '
                f'model.backbone.vfm.pretrained=/path/to/weights.pth (timm hosts them at '
                f'https://huggingface.co/timm/{model_name}; a DINO release file such as '
                f'dino_vitbase8_pretrain.pth works too)')

        offline = _timm_weights_offline_reason(model_name)
        if offline:  # fail at once instead of after huggingface_hub's retries
            raise unavailable(offline)
        try:
            model = timm.create_model(model_name, pretrained=True, **kwargs)
        except Exception as e:  # hub/network errors of timm
            raise unavailable(f'{type(e).__name__}: {e}') from e
    else:
        model = timm.create_model(model_name, pretrained=False, **kwargs)
        if from_file:
            state = _read_state_dict(os.fspath(pretrained))
            from timm.models.vision_transformer import checkpoint_filter_fn
            # timm turns an OpenAI/open_clip CLIP's `visual.proj` into
            # `head.*`; like a DINO head it is not part of the features
            state = {k: v for k, v in checkpoint_filter_fn(state, model).items()
                     if not k.startswith('head')}
            result = model.load_state_dict(state, strict=False)
            missing = [k for k in result.missing_keys
                       if not k.startswith('head')]
            if missing or result.unexpected_keys:
                raise WeightFileError(
                    f'VFM weights {pretrained!r} do not fit {model_name!r}: '
                    f'missing {missing[:5]}, unexpected '
                    f'{result.unexpected_keys[:5]}.')
    for attr in ('patch_embed', 'cls_token', 'pos_embed', 'blocks', 'norm'):
        if getattr(model, attr, None) is None:
            raise ValueError(f'ProxyCLIP needs a timm ViT with a class token '
                             f'and absolute position embeddings; '
                             f'{model_name!r} has no `{attr}`.')
    if getattr(model, 'num_prefix_tokens', 1) != 1 or \
            getattr(model, 'no_embed_class', False):
        raise ValueError(f'ProxyCLIP needs a ViT with exactly one class token '
                         f'embedded with the patches; {model_name!r} is not.')
    model.requires_grad_(False)
    return model.eval()


def proxy_attention(block: nn.Module, x: Tensor, grid_hw: Tuple[int, int],
                    proxy: Tensor, beta: float, gamma: float) -> Tensor:
    """ProxyCLIP's last block (Eq. 3-5): (B, M, C) tokens on the VFM grid.

    Args:
        block (nn.Module): CLIP's last ``ResidualAttentionBlock``.
        x (Tensor): (B, 1 + h*w, C) tokens entering it (class first).
        grid_hw (tuple): CLIP's patch grid ``(h, w)``.
        proxy (Tensor): (B, C', H', W') VFM patch features, ``M = H' * W'``.
        beta (float): Threshold on the mean similarity.
        gamma (float): Temperature (sharpness) of the proxy attention.
    """
    _, _, v = project_qkv(block, x)
    b, heads, _, d = v.shape
    out_hw = proxy.shape[2:]
    v = v[:, :, 1:].reshape(b * heads, grid_hw[0], grid_hw[1], d)
    v = F.interpolate(v.permute(0, 3, 1, 2), size=out_hw, mode='bilinear',
                      align_corners=False)
    v = v.permute(0, 2, 3, 1).reshape(b, heads, -1, d)
    with float32_region(v.device.type):  # thresholds in float32
        feats = F.normalize(proxy.flatten(2).float(), dim=1)
        sim = torch.einsum('bcm,bcn->bmn', feats, feats)
        sim = (sim - sim.mean(dim=(1, 2), keepdim=True) * beta) * gamma
        sim = sim.masked_fill(sim < 0, float('-inf'))
        weights = F.softmax(sim, dim=-1)
    # the thresholded weights are needed explicitly: no SDPA here
    return attend(block, weights.to(v.dtype)[:, None], v)


@MODELS.register_module()
class ProxyCLIPViT(TrainingFreeCLIPViT):
    """CLIP ViT whose last attention is ProxyCLIP's proxy attention.

    Returns (forward) one (B, embed_dim, H', W') map of dense embeddings on
    the VFM's patch grid.

    Args:
        vfm (dict): :func:`build_timm_vfm` arguments (``model_name``,
            ``pretrained``, ``model_kwargs``).
        beta (float): See :func:`proxy_attention` (1.2 in the paper).
        gamma (float): See :func:`proxy_attention` (3.0 in the paper).
        input_mean (Sequence[float]): Mean (0-255, RGB) the input was
            normalised with (CLIP's).
        input_std (Sequence[float]): Its std.
        **kwargs: :class:`TrainingFreeCLIPViT` / :class:`OpenCLIPViT`
            arguments (``model_name``, ``pretrained``, ...).
    """

    def __init__(self,
                 vfm: Optional[dict] = None,
                 beta: float = 1.2,
                 gamma: float = 3.0,
                 input_mean: Sequence[float] = CLIP_MEAN,
                 input_std: Sequence[float] = CLIP_STD,
                 **kwargs):
        if kwargs.get('out_indices'):
            raise ValueError('ProxyCLIPViT returns only the dense embeddings; '
                             'remove out_indices.')
        if kwargs.get('last_block_mode', 'vanilla') != 'vanilla':
            raise ValueError('ProxyCLIPViT replaces the last block itself; '
                             'remove last_block_mode.')
        super().__init__(**kwargs)
        if gamma <= 0:
            raise ValueError(f'ProxyCLIP gamma must be > 0, got {gamma}.')
        self.vfm = build_timm_vfm(**(vfm or {}))
        self.beta = float(beta)
        self.gamma = float(gamma)
        cfg = getattr(self.vfm, 'pretrained_cfg', None) or {}
        vfm_mean = [255 * m for m in cfg.get('mean', (0.485, 0.456, 0.406))]
        vfm_std = [255 * s for s in cfg.get('std', (0.229, 0.224, 0.225))]
        # x_vfm = (x * input_std + input_mean - vfm_mean) / vfm_std
        scale = torch.tensor(input_std) / torch.tensor(vfm_std)
        shift = (torch.tensor(input_mean) - torch.tensor(vfm_mean)) / \
            torch.tensor(vfm_std)
        self.register_buffer('_vfm_scale', scale.view(1, 3, 1, 1), False)
        self.register_buffer('_vfm_shift', shift.view(1, 3, 1, 1), False)

    @property
    def out_widths(self) -> Tuple[int, ...]:
        """One output: the dense embeddings (``embed_dim``)."""
        return (self.embed_dim, )

    def train(self, mode: bool = True):
        super().train(mode)
        self.vfm.eval()
        return self

    def proxy_features(self, inputs: Tensor) -> Tensor:
        """The VFM's last-layer patch features (B, C', H', W').

        Its final norm is applied, as DINO's ``get_intermediate_layers``.
        """
        x, grid_hw = self.vfm_tokens(inputs)
        x = self.vfm.norm(self.vfm.blocks(x))
        return self._to_map(x, grid_hw)

    def vfm_tokens(self, inputs: Tensor) -> Tuple[Tensor, tuple]:
        """The VFM's input tokens (B, 1 + h*w, C') before its blocks, and the grid.

        CLIP-normalised images are renormalised for the VFM, patch-embedded,
        and given the class token and the position embedding resized to the
        grid (any image size).
        """
        vit = self.vfm
        x = inputs * self._vfm_scale + self._vfm_shift
        x = vit.patch_embed.proj(x.to(vit.cls_token.dtype))
        grid_hw = tuple(x.shape[2:])
        x = x.flatten(2).transpose(1, 2)
        if getattr(vit.patch_embed, 'norm', None) is not None:
            x = vit.patch_embed.norm(x)
        cls = vit.cls_token.expand(x.shape[0], -1, -1)
        pos = resize_pos_embed_by_scale(vit.pos_embed[0],
                                        tuple(vit.patch_embed.grid_size),
                                        grid_hw)
        x = torch.cat([cls, x], dim=1) + pos
        for name in ('pos_drop', 'patch_drop', 'norm_pre'):
            if getattr(vit, name, None) is not None:
                x = getattr(vit, name)(x)
        return x, grid_hw

    def forward(self, inputs: Tensor) -> Tuple[Tensor]:
        if inputs.dim() != 4 or inputs.shape[1] != 3:
            raise ValueError(f'ProxyCLIPViT expects (B, 3, H, W) images, got '
                             f'{tuple(inputs.shape)}.')
        proxy = self.proxy_features(inputs)
        x, grid_hw = self.embed(inputs)
        blocks = self.visual.transformer.resblocks
        for block in blocks[:-1]:
            x = clip_block(block, x)
        tokens = proxy_attention(blocks[-1], x, grid_hw, proxy, self.beta,
                                 self.gamma)
        proj = self.visual.proj
        with float32_region(tokens.device.type):
            dense = self.visual.ln_post(tokens.to(proj.dtype)) @ proj
        return (self._to_map(dense, tuple(proxy.shape[2:]), with_cls=False), )
