"""Tiny random open_clip models, built from a model-config dict (no weights).

The dicts have the format of open_clip's ``model_configs/*.json`` files
(``embed_dim``, ``vision_cfg``, ``text_cfg``), so the same dict can be handed
to the backbones and text encoders that accept ``model_cfg=`` instead of a
model name. Nothing is downloaded.
"""
import copy
from typing import Optional

import torch

TINY_VIT_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=2, width=64, patch_size=8, head_width=32),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
)
"""A ViT-B-16-shaped CLIP, shrunk: 2 layers, width 64, patch 8, joint dim 32."""

TINY_CONVNEXT_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(timm_model_name='convnext_atto', timm_model_pretrained=False,
                    timm_pool='', timm_proj='linear', timm_drop_path=0.0,
                    image_size=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
)
"""A ConvNeXt CLIP (timm ``convnext_atto`` trunk), shaped like open_clip's
``convnext_*`` configs, with a tiny text tower."""


def tiny_clip_cfg(kind: str = 'vit', **overrides) -> dict:
    """A copy of a tiny model-config dict, optionally with top-level overrides.

    Args:
        kind (str): ``'vit'`` or ``'convnext'``.
        **overrides: Keys replaced at the top level (``embed_dim=...``) or,
            for ``vision_cfg``/``text_cfg`` dicts, merged into them.
    """
    base = {'vit': TINY_VIT_CFG, 'convnext': TINY_CONVNEXT_CFG}.get(kind)
    if base is None:
        raise ValueError(f"tiny_clip_cfg: unknown kind '{kind}', use 'vit' or 'convnext'")
    cfg = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


def build_tiny_clip(model_cfg: Optional[dict] = None, seed: int = 0):
    """Builds a random ``open_clip.CLIP`` from a model-config dict.

    Args:
        model_cfg (dict, optional): open_clip model config; defaults to
            :data:`TINY_VIT_CFG`.
        seed (int): Seed of the random initialisation (deterministic).

    Returns:
        open_clip.CLIP: The model in eval mode, float32, on CPU.
    """
    import open_clip
    cfg = copy.deepcopy(model_cfg or TINY_VIT_CFG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**cfg)
    return model.eval().float()


def openai_model_cfg(state_dict: dict) -> dict:
    """open_clip model config of an OpenAI-format CLIP ViT state dict.

    The rules of open_clip's ``build_model_from_openai_state_dict``
    (64-wide heads, QuickGELU).
    """
    def layers(prefix):
        return len({k[len(prefix):].split('.')[0]
                    for k in state_dict if k.startswith(prefix)})

    conv = state_dict['visual.conv1.weight']
    grid = round((state_dict['visual.positional_embedding'].shape[0] - 1)**.5)
    text_width = state_dict['ln_final.weight'].shape[0]
    return dict(
        embed_dim=int(state_dict['text_projection'].shape[1]),
        quick_gelu=True,
        vision_cfg=dict(
            image_size=int(grid * conv.shape[-1]),
            layers=layers('visual.transformer.resblocks.'),
            width=int(conv.shape[0]),
            patch_size=int(conv.shape[-1]),
            head_width=64),
        text_cfg=dict(
            context_length=int(state_dict['positional_embedding'].shape[0]),
            vocab_size=int(state_dict['token_embedding.weight'].shape[0]),
            width=int(text_width),
            heads=int(text_width) // 64,
            layers=layers('transformer.resblocks.')))
