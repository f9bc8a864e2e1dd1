"""open_clip towers built on timm (EVA02-CLIP, SigLIP) as dense backbones (issue #20).

Each tower is open_clip's own model config (``EVA02-B-16``, ``ViT-B-16-SigLIP``) with the timm
trunk narrowed (64 wide, 2 blocks, 64 px) through :func:`timm_create_kwargs` and random weights;
the open_clip model is built independently and its image-tower weights are loaded into ours.
Tolerances: 1e-5 (float32, same operations in a different grouping); the vanilla pooled path is
compared with open_clip's ``encode_image`` at 1e-5 as well.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from mmovss.models.backbones.open_clip_timm_vit import (
    TIMM_LAST_BLOCK_MODES,
    OpenCLIPTimmViT,
    timm_create_kwargs,
    timm_merge_heads,
    timm_qkv,
    timm_residual_and_mlp,
)
from mmovss.models.utils.open_clip_weights import build_open_clip

pytest.importorskip('timm')

TIMM_KWARGS = dict(embed_dim=64, depth=2, num_heads=2, img_size=64)
TOWERS = {'EVA02-B-16': 32, 'ViT-B-16-SigLIP': 64}  # name -> narrowed joint width
MODES = ('maskclip', 'maskclip_noresidual', 'vanilla_noresidual', 'sclip', 'clearclip', 'naclip')
ATOL = 1e-5


def tiny_cfg(name: str) -> dict:
    import open_clip
    cfg = copy.deepcopy(open_clip.get_model_config(name))
    cfg['embed_dim'] = TOWERS[name]
    cfg['vision_cfg']['image_size'] = TIMM_KWARGS['img_size']
    cfg['text_cfg'].update(width=32, heads=2, layers=1, vocab_size=49408)
    return cfg


@pytest.fixture(scope='module', params=sorted(TOWERS))
def towers(request):
    """(name, open_clip model, our backbone with the same image-tower weights)."""
    name = request.param
    torch.manual_seed(0)
    with timm_create_kwargs(TIMM_KWARGS):
        clip, _ = build_open_clip(None, None, tiny_cfg(name))
    torch.manual_seed(1)  # different draws: the weights must come from the copy
    ours = OpenCLIPTimmViT(model_cfg=tiny_cfg(name), timm_model_kwargs=TIMM_KWARGS,
                           out_indices=(0, 1), pos_embed_resize='size')
    ours.visual.load_state_dict(clip.visual.state_dict())
    return name, clip, ours


def _images(*size, seed=0):
    return torch.randn(*size, generator=torch.Generator().manual_seed(seed))


def test_vanilla_pooled_equals_open_clip_encode_image(towers):
    name, clip, ours = towers
    x = _images(2, 3, 64, 64)
    with torch.no_grad():
        expected = clip.encode_image(x)
        got = ours.encode_pooled(x)
    assert got.shape == expected.shape == (2, TOWERS[name])
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_dense_output_shapes_any_size(towers):
    name, _, ours = towers
    with torch.no_grad():
        outs = ours(_images(1, 3, 100, 77))
    # incomplete patches dropped: 100 // 16 = 6, 77 // 16 = 4
    assert [tuple(o.shape) for o in outs] == [(1, 64, 6, 4), (1, 64, 6, 4),
                                              (1, TOWERS[name], 6, 4)]


def test_dense_tokens_are_the_pool_head_on_each_token(towers):
    """Hand-written head: EVA02 (token pool) ``head(x_p)``; SigLIP (MAP) ``y + mlp(norm(y))``
    with ``y = proj(v_p)`` (one key: attention weight 1)."""
    name, _, ours = towers
    trunk = ours.trunk
    with torch.no_grad():
        x, grid, _ = ours.forward_tokens(_images(1, 3, 64, 64))
        dense = ours.project_dense(x, grid).flatten(2).transpose(1, 2)[0]
        tokens = trunk.norm(x)[0, ours.num_prefix_tokens:]
        pool = trunk.attn_pool
        if pool is not None:
            c = tokens.shape[-1]
            v = F.linear(tokens, pool.kv.weight[c:], pool.kv.bias[c:])
            y = pool.proj(v)
            expected = y + pool.mlp(pool.norm(y))
        else:
            expected = tokens
        expected = ours.visual.head(trunk.head(trunk.fc_norm(expected)))
    assert name != 'ViT-B-16-SigLIP' or pool is not None
    torch.testing.assert_close(dense, expected, atol=ATOL, rtol=0)


def test_attention_decomposition_reproduces_timm_block(towers):
    """``timm_qkv`` / ``timm_merge_heads`` / ``timm_residual_and_mlp`` with CLIP's own softmax
    attention give timm's block (EVA02: separate q/k/v projections, q/v biases, RoPE, inner norm;
    SigLIP: fused qkv), on a grid other than the native one."""
    _, _, ours = towers
    with torch.no_grad():
        x, grid, rope = ours.embed(_images(1, 3, 96, 80))
        block = ours.trunk.blocks[0]
        expected = block(x, rope=rope) if rope is not None else block(x)
        q, k, v = timm_qkv(block, x, rope, ours.num_prefix_tokens)
        attn = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1]**-0.5, dim=-1) @ v
        got = timm_residual_and_mlp(block, x, timm_merge_heads(block, attn, x))
    assert (rope is not None) == (ours.num_prefix_tokens == 1)  # EVA02 has RoPE + class token
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize('mode', MODES)
def test_each_mode_changes_only_the_last_block(towers, mode):
    _, _, ours = towers
    x = _images(1, 3, 64, 64)
    trunk = ours.trunk
    with torch.no_grad():
        timm_maps = trunk.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
        ours.last_block_mode = 'vanilla'
        vanilla = ours(x)
        ours.last_block_mode = mode
        try:
            outs = ours(x)
        finally:
            ours.last_block_mode = 'vanilla'
    for got, expected in zip(vanilla[:2], timm_maps):
        torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(outs[0], timm_maps[0], atol=ATOL, rtol=0)
    for changed, before in ((outs[1], vanilla[1]), (outs[-1], vanilla[-1])):
        assert (changed - before).abs().max() > 1e-3 * before.abs().max()  # >> rounding


def test_naclip_equals_the_written_out_formula(towers):
    """``O(softmax(k k^T s + Omega) v)``, Omega = exp(-d^2 / (2 std^2)) between patches, 0 for
    prefix tokens (Hajimiri et al., WACV 2025, Eq. 6-8)."""
    _, _, ours = towers
    std = 1.5
    with torch.no_grad():
        x, grid, rope = ours.embed(_images(1, 3, 48, 64))
        block = ours.trunk.blocks[-1]
        got = TIMM_LAST_BLOCK_MODES['naclip'](block, x, grid, rope, ours.num_prefix_tokens,
                                              gaussian_std=std)
        _, k, v = timm_qkv(block, x, rope, ours.num_prefix_tokens)
        npt = ours.num_prefix_tokens
        n = k.shape[2]
        omega = torch.zeros(n, n)
        for p in range(grid[0] * grid[1]):
            for r in range(grid[0] * grid[1]):
                d2 = (p // grid[1] - r // grid[1])**2 + (p % grid[1] - r % grid[1])**2
                omega[npt + p, npt + r] = math.exp(-d2 / (2 * std**2))
        weights = torch.softmax(k @ k.transpose(-2, -1) * k.shape[-1]**-0.5 + omega, dim=-1)
        expected = timm_merge_heads(block, weights @ v, x)
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)


def test_segmentor_from_config_runs(towers):
    """The NACLIP base for the tower builds (tiny stand-in weights) and segments an image."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    name, _, _ = towers
    base = {'EVA02-B-16': 'naclip_eva02-b16.py', 'ViT-B-16-SigLIP': 'naclip_siglip-b16.py'}[name]
    cfg = Config.fromfile(f'configs/_base_/models/{base}').model.to_dict()
    for part in ('backbone', 'text_encoder'):
        cfg[part].pop('model_name')
        cfg[part].update(model_cfg=tiny_cfg(name), pretrained=None)
    cfg['backbone']['timm_model_kwargs'] = TIMM_KWARGS
    cfg['text_encoder'].update(templates=['a photo of a {}.'], cache_dir=None)
    cfg['decode_head']['in_channels'] = TOWERS[name]
    cfg['vocabulary'] = ['cat', 'dog', 'sky']
    cfg['test_cfg'] = dict(mode='slide', crop_size=(64, 64), stride=(48, 48))
    init_default_scope('mmseg')
    with timm_create_kwargs(TIMM_KWARGS):  # the text encoder builds the whole CLIP too
        model = MODELS.build(cfg).eval()
    assert type(model.backbone).__name__ == 'OpenCLIPTimmViT'
    assert model.backbone.last_block_mode == 'naclip'
    with torch.no_grad():
        logits = model.encode_decode(_images(1, 3, 80, 96), [dict(img_shape=(80, 96))])
    assert logits.shape == (1, 3, 80, 96)


def test_open_clip_vit_names_the_timm_backbone():
    from mmovss.models.backbones import OpenCLIPViT
    with timm_create_kwargs(TIMM_KWARGS), pytest.raises(ValueError, match='OpenCLIPTimmViT'):
        OpenCLIPViT(model_cfg=tiny_cfg('ViT-B-16-SigLIP'))


def test_unsupported_mode_is_a_clear_error():
    with timm_create_kwargs(TIMM_KWARGS), pytest.raises(KeyError, match='supported'):
        OpenCLIPTimmViT(model_cfg=tiny_cfg('ViT-B-16-SigLIP'), timm_model_kwargs=TIMM_KWARGS,
                        last_block_mode='resclip')
