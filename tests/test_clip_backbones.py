"""OpenCLIPViT / OpenCLIPConvNeXt: shapes at odd sizes, agreement with
open_clip, position-embedding cache, freezing and last-block modes."""
import pytest
import torch

from mmovss.models.backbones import (
    LAST_BLOCK_MODES,
    OpenCLIPConvNeXt,
    OpenCLIPViT,
    register_last_block_mode,
)
from mmovss.testing.clip import build_tiny_clip, tiny_clip_cfg


@pytest.fixture(scope='module')
def vit_and_clip():
    cfg = tiny_clip_cfg('vit')
    backbone = OpenCLIPViT(model_cfg=cfg, out_indices=(0, -1))
    clip = build_tiny_clip(cfg)
    clip.visual.load_state_dict(backbone.visual.state_dict())
    return backbone, clip


@pytest.mark.parametrize('size', [(32, 32), (45, 61), (17, 9)])
def test_vit_shapes_at_odd_sizes(vit_and_clip, size):
    backbone, _ = vit_and_clip
    with torch.no_grad():
        outs = backbone(torch.randn(2, 3, *size))
    h, w = -(-size[0] // 8), -(-size[1] // 8)  # ceil, patch 8
    assert [tuple(o.shape) for o in outs] == [(2, 64, h, w), (2, 64, h, w),
                                              (2, 32, h, w)]
    assert all(o.dtype == torch.float32 for o in outs)


def test_vit_dense_embeddings_match_open_clip(vit_and_clip):
    backbone, clip = vit_and_clip
    x = torch.randn(2, 3, 32, 32)  # native size: no interpolation
    clip.visual.output_tokens = True
    with torch.no_grad():
        _, tokens = clip.visual(x)  # ln_post(x)[:, 1:]
        dense = backbone(x)[-1]
    clip.visual.output_tokens = False
    expected = (tokens @ clip.visual.proj).transpose(1, 2).reshape(2, 32, 4, 4)
    torch.testing.assert_close(dense, expected, atol=1e-5, rtol=0)


def test_vit_position_embedding_resize_is_cached(vit_and_clip):
    backbone, _ = vit_and_clip
    native = backbone.interpolated_pos_embed((4, 4))
    assert native is backbone.visual.positional_embedding
    big = backbone.interpolated_pos_embed((6, 8))
    assert big.shape == (1 + 48, 64)
    assert backbone.interpolated_pos_embed((6, 8)) is big
    torch.testing.assert_close(big[0], native[0])  # class position kept
    with torch.no_grad():  # new weights (e.g. load_state_dict): recomputed
        backbone.visual.positional_embedding.mul_(2)
    try:
        torch.testing.assert_close(backbone.interpolated_pos_embed((6, 8)),
                                   big * 2)
    finally:
        with torch.no_grad():
            backbone.visual.positional_embedding.div_(2)


def test_vit_freezing_and_unfreezing():
    cfg = tiny_clip_cfg('vit')
    frozen = OpenCLIPViT(model_cfg=cfg)
    assert not any(p.requires_grad for p in frozen.parameters())
    tuned = OpenCLIPViT(model_cfg=cfg,
                        unfrozen=('transformer.resblocks.*.attn.*', ))
    trainable = {n for n, p in tuned.visual.named_parameters()
                 if p.requires_grad}
    assert trainable == {f'transformer.resblocks.{i}.attn.{k}'
                         for i in range(2)
                         for k in ('in_proj_weight', 'in_proj_bias',
                                   'out_proj.weight', 'out_proj.bias')}
    tuned.train()
    assert not tuned.visual.training  # CLIP tower stays in eval mode
    with pytest.raises(ValueError, match='matches no parameter'):
        OpenCLIPViT(model_cfg=cfg, unfrozen=('blocks.*.attn',))
    with pytest.raises(ValueError, match='out_indices'):
        OpenCLIPViT(model_cfg=cfg, out_indices=(5, ))


def test_last_block_mode_is_replaceable(vit_and_clip):
    backbone, _ = vit_and_clip

    @register_last_block_mode('test_mlp_only')
    def mlp_only(block, x, grid_hw):
        assert x.shape[1] == 1 + grid_hw[0] * grid_hw[1]
        return x + block.mlp(block.ln_2(x))

    try:
        x = torch.randn(1, 3, 32, 40)
        with torch.no_grad():
            vanilla = backbone(x)
            backbone.last_block_mode = 'test_mlp_only'
            replaced = backbone(x)
            # by hand: all blocks but the last, then the replacement
            tokens, grid = backbone.embed(x)
            blocks = backbone.visual.transformer.resblocks
            tokens = blocks[0](tokens)
            tokens = mlp_only(blocks[1], tokens, grid)
        torch.testing.assert_close(replaced[-1],
                                   backbone.project_dense(tokens, grid))
        torch.testing.assert_close(replaced[0], vanilla[0])  # block 0 same
        assert not torch.allclose(replaced[-1], vanilla[-1])
    finally:
        backbone.last_block_mode = 'vanilla'
        LAST_BLOCK_MODES.pop('test_mlp_only')
    with pytest.raises(KeyError, match='registered'):
        OpenCLIPViT(model_cfg=tiny_clip_cfg('vit'), last_block_mode='nope')


def test_vit_rejects_convnext():
    with pytest.raises(ValueError, match='OpenCLIPConvNeXt'):
        OpenCLIPViT(model_cfg=tiny_clip_cfg('convnext'))


@pytest.fixture(scope='module')
def convnext_and_clip():
    cfg = tiny_clip_cfg('convnext')
    backbone = OpenCLIPConvNeXt(model_cfg=cfg)
    clip = build_tiny_clip(cfg)
    clip.visual.load_state_dict(backbone.visual.state_dict())
    return backbone, clip


@pytest.mark.parametrize('size', [(64, 64), (45, 70)])
def test_convnext_shapes_at_odd_sizes(convnext_and_clip, size):
    backbone, _ = convnext_and_clip
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, *size))
    # padded to a multiple of 32, then strides 4, 8, 16, 32
    ph, pw = -(-size[0] // 32) * 32, -(-size[1] // 32) * 32
    expected = [(1, c, ph // s, pw // s)
                for c, s in zip((40, 80, 160, 320), (4, 8, 16, 32))]
    expected.append((1, 32, -(-size[0] // 32), -(-size[1] // 32)))
    assert [tuple(o.shape) for o in outs] == expected
    assert all(o.dtype == torch.float32 for o in outs)


def test_convnext_dense_head_matches_open_clip(convnext_and_clip):
    backbone, clip = convnext_and_clip
    x = torch.randn(2, 3, 32, 32)  # one position: pooling is the identity
    with torch.no_grad():
        dense = backbone(x)[-1]
        expected = clip.encode_image(x)
    assert dense.shape == (2, 32, 1, 1)
    torch.testing.assert_close(dense[:, :, 0, 0], expected, atol=1e-5, rtol=0)
    assert not any(p.requires_grad for p in backbone.parameters())
    with pytest.raises(ValueError, match='OpenCLIPViT'):
        OpenCLIPConvNeXt(model_cfg=tiny_clip_cfg('vit'))
