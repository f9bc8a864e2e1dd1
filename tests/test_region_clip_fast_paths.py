"""Fast paths of the masked-crop CLIP classification (ZegFormer, OVSeg, SAM + CLIP) against
the plain computation: the QuickGELU MLP with the scale folded into the weights
(:func:`clip_mlp`), the class-token-only last block (:func:`class_token_block`) and the
crops without crop masks (``crop_regions(with_masks=False)``). Tolerances: 1e-5 absolute
(float32 rounding of the reordered products), crops bit-equal."""
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

import mmovss  # noqa: F401
from mmovss.models.utils.clip_attention import clip_block, clip_mlp
from mmovss.models.utils.region_clip_classifier import class_token_block, zegformer_mask_boxes
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

CLIP = tiny_clip_cfg('vit')


def _classifier(**kwargs):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = dict(type='RegionCLIPClassifier', crop_size=16,
               clip=dict(type='OpenCLIPViT', model_cfg=CLIP, quick_gelu=True))
    cfg.update(kwargs)
    classifier = MODELS.build(cfg).eval()
    with torch.no_grad():  # informative LayerNorms and biases (not the 1 / 0 init)
        for name, p in classifier.named_parameters():
            if p.dim() == 1:
                p.add_(0.3 * torch.randn_like(p))
    return classifier


def _masks(n=4, size=32):
    g = torch.Generator().manual_seed(3)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n - 1):
        y, x = torch.randint(0, size - 8, (2, ), generator=g).tolist()
        masks[i, y:y + 3 + 2 * i, x:x + 5 + i] = True
    return masks  # the last one empty


def test_clip_mlp_equals_quick_gelu_mlp():
    classifier = _classifier()
    block = classifier.clip.visual.transformer.resblocks[0]
    assert type(block.mlp.gelu).__name__ == 'QuickGELU'
    x = torch.randn(2, 5, block.mlp.c_fc.in_features, requires_grad=True)
    ref = block.mlp(x)
    out = clip_mlp(block.mlp, x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # differentiable (no in-place activation while recording the graph)
    g_ref, = torch.autograd.grad(ref.sum(), x)
    g_out, = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g_out, g_ref, atol=1e-5, rtol=0)
    # modules with hooks, or weights cast once to bf16, run as they are (hooks fire)
    seen = []
    handle = block.mlp.c_fc.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        assert torch.equal(clip_mlp(block.mlp, x), block.mlp(x)) and len(seen) == 2
    handle.remove()
    mlp16 = block.mlp.to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(clip_mlp(mlp16, x.bfloat16()), mlp16(x.bfloat16()))
    # any other MLP runs as it is
    plain = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.GELU(), torch.nn.Linear(4, 8))
    y = torch.randn(3, 8)
    assert torch.equal(clip_mlp(plain, y), plain(y))


def test_class_token_block_is_the_first_row():
    classifier = _classifier()
    block = classifier.clip.visual.transformer.resblocks[-1]
    x = torch.randn(3, 17, classifier.clip.width)
    with torch.no_grad():
        full = clip_block(block, x)
        reference = block(x)  # open_clip's own forward
        cls = class_token_block(block, x)
    assert cls.shape == (3, 1, x.shape[-1])
    torch.testing.assert_close(cls, full[:, :1], atol=1e-5, rtol=0)
    torch.testing.assert_close(cls, reference[:, :1], atol=1e-5, rtol=0)


@pytest.mark.parametrize('mask_prompt_depth', [0, 1])
def test_encode_equals_open_clip_forward(mask_prompt_depth):
    classifier = _classifier(mask_prompt_depth=mask_prompt_depth)
    visual = classifier.clip.visual
    crops = torch.randn(3, 3, 16, 16)
    crop_masks = torch.zeros(3, 16, 16, dtype=torch.bool)
    crop_masks[:, 4:12, 2:9] = True
    with torch.no_grad():
        embeds = classifier.encode(crops, crop_masks)
        x, _ = classifier.clip.embed(crops)
        masked = classifier.masked_patches(crop_masks)[..., None]
        for i, block in enumerate(visual.transformer.resblocks):
            if i < mask_prompt_depth:
                x = torch.cat([x[:, :1], torch.where(masked, classifier.mask_prompts[i],
                                                     x[:, 1:])], dim=1)
            x = block(x)
        ref = F.normalize(visual.ln_post(x[:, 0]) @ visual.proj, dim=-1)
    torch.testing.assert_close(embeds, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize('mask_fill', ['mean', 'zero'])
def test_crops_without_crop_masks(mask_fill):
    """ZegFormer's order (fill, then crop): the crops equal roi_align of
    ``image * m + fill * (1 - m)`` bit for bit, with or without the crop masks."""
    classifier = _classifier(crop_style='cropmask', mask_before_crop=True,
                             box_style='zegformer', classify_empty=True, mask_fill=mask_fill)
    g = torch.Generator().manual_seed(1)
    pixels = torch.rand(3, 32, 32, generator=g) * 255
    masks = _masks()
    crops, crop_masks = classifier.crop_regions(pixels, masks)
    fast, none = classifier.crop_regions(pixels, masks, with_masks=False)
    assert none is None and crop_masks.shape == (4, 16, 16)
    assert torch.equal(fast, crops)
    image = classifier.normalize(pixels)[None]
    keep = masks[:, None].float()
    filled = image * keep + classifier.fill_value(image) * (1 - keep)
    rois = torch.cat([torch.arange(4.)[:, None], zegformer_mask_boxes(masks)], dim=1)
    expect = roi_align(filled, rois, (16, 16), 1.0, -1, True)
    assert torch.equal(crops, expect)
    # the crop masks are still made where the fill needs them
    classifier.mask_before_crop = False
    _, needed = classifier.crop_regions(pixels, masks, with_masks=False)
    assert needed is not None and needed.shape == (4, 16, 16)


def test_san_side_adapter_layer_sdpa():
    """SAN's side-adapter layers (mmseg ``TransformerEncoderLayer``) through SDPA equal
    their own forward in inference; in training they run their own forward."""
    from mmovss.models.decode_heads.san_head import encoder_layer_sdpa

    from mmseg.models.backbones.vit import TransformerEncoderLayer
    torch.manual_seed(0)
    layer = TransformerEncoderLayer(embed_dims=24, num_heads=3, feedforward_channels=48)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.2 * torch.randn_like(p))
    layer.eval()
    x = torch.randn(2, 11, 24)
    with torch.no_grad():
        torch.testing.assert_close(encoder_layer_sdpa(layer, x), layer(x), atol=1e-5, rtol=0)
    layer.train()
    torch.manual_seed(1)
    ref = layer(x)
    torch.manual_seed(1)
    assert torch.equal(encoder_layer_sdpa(layer, x), ref)
