"""FC-CLIP: forward/loss/backward on a tiny ConvNeXt CLIP, vocabulary swap,
the pure-PyTorch deformable attention against a direct computation."""
import pytest
import torch

import mmovss  # noqa: F401
from mmovss.models.necks import (
    bilinear_sample_bags,
    grid_sample_deformable_attention,
    multi_scale_deformable_attention,
)
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CLIP = tiny_clip_cfg('convnext')


def cfg(**head):
    head_cfg = dict(
        type='FCCLIPHead', in_channels=[40, 80, 160, 320], embed_dim=32,
        channels=32, num_queries=5, num_layers=3, num_heads=2,
        ffn_channels=64,
        pixel_decoder=dict(type='MSDeformAttnPixelDecoder', mask_channels=32,
                           num_layers=1, num_heads=2, ffn_channels=64),
        seen_vocabulary=['cat', 'dog'],
        criterion=dict(type='MaskClassificationLoss', num_points=64))
    head_cfg.update(head)
    return dict(type='OpenVocabEncoderDecoder',
                backbone=dict(type='OpenCLIPConvNeXt', model_cfg=CLIP),
                text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP,
                                  templates='single'),
                decode_head=head_cfg, vocabulary=['cat', 'dog', 'sky'],
                test_cfg=dict(mode='whole'))


def test_forward_loss_backward_and_frozen_backbone():
    model = MODELS.build(cfg()).train()
    x = torch.randn(2, 3, 64, 64)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(64, 64),
                                        ori_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64)))
        samples.append(s)
    losses = model.loss(x, samples)
    # final set + 3 decoder layers (deep supervision), 3 terms each
    assert len(losses) == 4 * 3 and 'decode.loss_cls' in losses
    total = sum(losses.values())
    total.backward()
    head = model.decode_head
    assert head.pixel_decoder.layers[0].attn.sampling_offsets.weight.grad \
        is not None
    assert head.decoder.logit_scale.grad is not None
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_vocabulary_swap_and_ensemble_changes_scores():
    # seeded: with some random inits every mask is empty at CLIP resolution, so the
    # gated ensemble has nothing to change (the test then depends on earlier tests' RNG use)
    torch.manual_seed(0)
    model = MODELS.build(cfg()).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        three = model._forward(x)
        model.set_vocabulary(['cat', 'dog', 'sky', 'road'])
        four = model._forward(x)
        model.decode_head.ensemble = False
        plain = model._forward(x)
        out = model.predict(x)
    assert three.shape == (1, 3, 16, 16) and four.shape == (1, 4, 16, 16)
    assert not torch.allclose(four, plain)
    assert out[0].pred_sem_seg.shape == (64, 64)


def bag_attention(value, shapes, loc, w):
    """:func:`bilinear_sample_bags` with normalised locations (as the public
    function calls it in inference), usable with gradients."""
    size = torch.tensor([[x, y] for y, x in shapes.tolist()], dtype=loc.dtype)
    pixels = (loc * size[:, None] - 0.5).permute(0, 2, 3, 4, 5, 1)
    return bilinear_sample_bags(value, shapes.tolist(), pixels[..., 0, :], pixels[..., 1, :],
                                w.permute(0, 2, 3, 4, 1))


@pytest.mark.parametrize('path', ['grid_sample', 'bags'])
def test_deformable_attention_matches_direct_bilinear_sampling(path):
    """Values and gradients (values, weights and locations) of both paths
    (``grid_sample`` per level: training; one ``embedding_bag``: inference)
    against bilinear sampling written out point by point (batch, queries,
    heads, levels and points all of different sizes, so a mixed-up axis
    cannot pass)."""
    torch.manual_seed(0)
    shapes = torch.tensor([[3, 4], [2, 2]])
    b, heads, d, nq, points = 2, 2, 5, 3, 4
    value = torch.randn(b, 12 + 4, heads, d, requires_grad=True)
    # some points outside the maps (zero padding)
    loc = (torch.rand(b, nq, heads, 2, points, 2) * 1.4 - 0.2).requires_grad_()
    w = torch.rand(b, nq, heads, 2, points, requires_grad=True)
    attention = grid_sample_deformable_attention if path == 'grid_sample' else bag_attention
    out = attention(value, shapes, loc, w)
    with torch.no_grad():  # the public function: bags without gradients
        torch.testing.assert_close(multi_scale_deformable_attention(value, shapes, loc, w),
                                   out, atol=1e-6, rtol=1e-6)
    # direct: bilinear interpolation with pixel centres at (i + 0.5) / size
    expect = []
    starts = [0, 12]
    for n in range(b):
        for q in range(nq):
            for h in range(heads):
                total = torch.zeros(d)
                for lvl, (hh, ww) in enumerate(shapes.tolist()):
                    v = value[n, starts[lvl]:starts[lvl] + hh * ww, h].reshape(hh, ww, d)
                    for p in range(points):
                        x = loc[n, q, h, lvl, p, 0] * ww - 0.5
                        y = loc[n, q, h, lvl, p, 1] * hh - 0.5
                        x0, y0 = int(torch.floor(x)), int(torch.floor(y))
                        acc = torch.zeros(d)
                        for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0),
                                       (y0 + 1, x0 + 1)):
                            if 0 <= yy < hh and 0 <= xx < ww:
                                wt = (1 - abs(x - xx)) * (1 - abs(y - yy))
                                acc = acc + wt * v[yy, xx]
                        total = total + w[n, q, h, lvl, p] * acc
                expect.append(total)
    expect = torch.stack(expect).reshape(b, nq, heads * d)
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (value, w, loc), grad)
    want = torch.autograd.grad(expect, (value, w, loc), grad)
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


def test_deformable_attention_module_paths_agree():
    """The module's inference path (locations in pixels and the softmax with
    queries contiguous, then one gather) equals its training path
    (normalised locations, ``grid_sample``) in values; points fall outside
    the maps too."""
    from mmovss.models.necks import MSDeformAttn

    torch.manual_seed(0)
    attn = MSDeformAttn(32, num_heads=4, num_levels=3, num_points=2)
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=1.0)
    torch.nn.init.normal_(attn.attention_weights.weight, std=0.5)
    shapes = torch.tensor([[3, 5], [6, 10], [12, 20]])
    starts = torch.tensor([0, 15, 75])
    query = torch.randn(2, 30, 32)
    value = torch.randn(2, 315, 32)
    refs = torch.rand(2, 30, 3, 2)
    training = attn(query, refs, value, shapes, starts)  # parameters need grads
    with torch.no_grad():
        inference = attn(query, refs, value, shapes, starts)
    torch.testing.assert_close(inference, training.detach(), atol=1e-5, rtol=1e-5)
    assert float((training - attn.output_proj.bias).abs().max()) > 0.1


def test_deformable_attention_samples_in_float32_in_a_bf16_stream():
    """With its weights cast to bf16 (FC-CLIP's cast path) the attention
    keeps the sampling offsets and weights float32 and samples the values at
    float32 locations: on a 256-pixel-wide level bf16 locations (8-bit
    mantissa) would move points by up to a pixel of random values, about the
    values' own size; float32 sampling stays within bf16 rounding."""
    import copy

    from mmovss.models.decode_heads import FCCLIPHead
    from mmovss.models.necks import MSDeformAttn
    from mmovss.models.utils.low_precision import cast_tower

    class Tower(torch.nn.Module):
        float32_modules = FCCLIPHead.float32_modules

        def __init__(self, attn):
            super().__init__()
            self.attn = attn

    torch.manual_seed(0)
    shapes = torch.tensor([[4, 256]])
    ref = MSDeformAttn(32, num_heads=2, num_levels=1, num_points=2)
    torch.nn.init.normal_(ref.sampling_offsets.weight, std=0.5)
    low = copy.deepcopy(ref)
    cast_tower(Tower(low), torch.bfloat16)
    assert low.value_proj.weight.dtype == low.output_proj.weight.dtype == torch.bfloat16
    assert low.sampling_offsets.weight.dtype == low.attention_weights.weight.dtype == \
        torch.float32
    query, value = torch.randn(1, 64, 32), torch.randn(1, 4 * 256, 32)
    refs = torch.rand(1, 64, 1, 2) * 0.2 + 0.8  # x near 1: bf16 spacing 1/128
    with torch.no_grad():
        expect = ref(query, refs, value, shapes, torch.tensor([0]))
        out = low(query.bfloat16(), refs, value.bfloat16(), shapes, torch.tensor([0]))
    assert out.dtype == torch.bfloat16
    err = float((out.float() - expect).abs().max())
    assert err <= 0.05 * float(expect.abs().max()), err


def test_pixel_decoder_rejects_wrong_inputs():
    with pytest.raises(ValueError, match='four maps'):
        MODELS.build(dict(type='MSDeformAttnPixelDecoder',
                          in_channels=[8, 16, 32]))


def test_inference_decoder_computes_only_the_last_sets():
    """``last_only`` (inference) equals the last layer of the full decoder: the
    earlier layers' attention masks, predicted at the attended level's size from
    resized mask features, are the full masks resized there (bilinear resizing
    is linear)."""
    torch.manual_seed(0)
    model = MODELS.build(cfg()).eval()
    head = model.decode_head
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))
        mask_feats, levels = head.pixel_decoder(head._transform_inputs(feats))
        seen = {True: [], False: []}
        for last_only in (False, True):
            hooks = [layer.register_forward_pre_hook(
                lambda module, args, last_only=last_only: seen[last_only].append(args[4]))
                for layer in head.decoder.layers]
            out = head.decoder(mask_feats, levels, last_only=last_only)
            for hook in hooks:
                hook.remove()
            seen[last_only].append(out)
    full_masks, full_embeds = seen[False].pop()
    masks, embeds = seen[True].pop()
    assert len(full_masks) == 4 and len(masks) == len(embeds) == 1
    # the attention masks restrict something (else the comparison is vacuous)
    assert any(0 < a.float().mean() < 1 for a in seen[False])
    for full, light in zip(seen[False], seen[True]):
        assert full.shape == light.shape and torch.equal(full, light)
    torch.testing.assert_close(masks[0], full_masks[-1], rtol=0, atol=1e-5)
    torch.testing.assert_close(embeds[0], full_embeds[-1], rtol=0, atol=1e-5)
    # the head's inference path takes it
    with torch.no_grad():
        final_masks, _ = head.final_sets(feats, model.class_embeddings())
    torch.testing.assert_close(final_masks, full_masks[-1], rtol=0, atol=1e-5)


def test_attention_mask_of_a_single_image_is_shared_by_the_heads():
    """A batch of one gets one (Q, h w) mask that attention broadcasts over the
    heads: the decoder layer's output equals the one with a copy per head
    (the (B * heads, Q, h w) mask of larger batches), and the masks agree."""
    torch.manual_seed(0)
    model = MODELS.build(cfg()).eval()
    decoder = model.decode_head.decoder
    logits = torch.randn(2, 10, 8, 8)
    both = decoder.attention_mask(logits, (4, 4))
    one = decoder.attention_mask(logits[:1], (4, 4))
    heads = decoder.num_heads
    assert both.shape == (2 * heads, 10, 16) and one.shape == (10, 16)
    assert 0 < one.float().mean() < 1
    assert all(torch.equal(one, both[h]) for h in range(heads))
    layer = decoder.layers[0]
    channels = decoder.query_feat.weight.shape[1]
    q, q_pos = torch.randn(1, 10, channels), torch.randn(1, 10, channels)
    memory, mem_pos = torch.randn(1, 16, channels), torch.randn(1, 16, channels)
    with torch.no_grad():
        shared = layer(q, q_pos, memory, mem_pos, one)
        per_head = layer(q, q_pos, memory, mem_pos, both[:heads])
        unmasked = layer(q, q_pos, memory, mem_pos, None)
    torch.testing.assert_close(shared, per_head, rtol=0, atol=1e-6)
    assert float((shared - unmasked).abs().max()) > 1e-3


def test_deformable_attention_path_choice():
    """The gather path serves inference below 2**24 value rows (its row
    numbers are exact in float32); gradients or more rows take the
    grid_sample path."""
    from mmovss.models.necks.ms_deform_attn import use_bags

    small = torch.zeros(2, 100, 8, 4)
    big = torch.zeros(1, 1, 1, 4).expand(1, 2 ** 21, 8, 4)  # 2**24 rows, no memory
    weights = torch.zeros(3, requires_grad=True)
    with torch.no_grad():
        assert use_bags(small, weights) and not use_bags(big, weights)
    assert not use_bags(small, weights)  # gradients recorded
    assert use_bags(small, weights.detach())
