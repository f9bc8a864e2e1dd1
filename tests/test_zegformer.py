"""ZegFormer: forward/loss/backward on tiny models, the fusion and the
calibration against hand-computed values, vocabulary swap; the region CLIP
classifier's crops."""

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.models.decode_heads.zegformer_head import zegformer_fusion
from mmovss.models.utils.region_clip_classifier import mask_boxes
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CLIP = tiny_clip_cfg('vit')
BACKBONE = dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=8,
                norm_cfg=dict(type='BN'))
REGION_CLIP = dict(type='RegionCLIPClassifier',
                   clip=dict(type='OpenCLIPViT', model_cfg=CLIP), crop_size=16)


def zegformer_cfg(**head):
    head_cfg = dict(type='ZegFormerHead', in_channels=[8, 16, 32, 64],
                    embed_dim=32, channels=32, mask_channels=32, num_queries=4,
                    num_layers=2, num_heads=2, ffn_channels=64, mode='fusion',
                    seen_vocabulary=['cat', 'dog'], region_classifier=REGION_CLIP,
                    criterion=dict(type='MaskClassificationLoss', num_points=64))
    head_cfg.update(head)
    return dict(type='TwoStageEncoderDecoder',
                data_preprocessor=dict(type='SegDataPreProcessor', mean=[120., 110., 100.],
                                       std=[60., 60., 60.], bgr_to_rgb=True),
                backbone=BACKBONE,
                text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP,
                                  templates='single'),
                decode_head=head_cfg, vocabulary=['cat', 'dog', 'sky'])


def samples(n=2, size=32, num_classes=3):
    out = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, size, size)))
        out.append(s)
    return out


@pytest.fixture(scope='module')
def model():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(zegformer_cfg())


def test_loss_backward_trains_mask_model_not_clip(model):
    model.train()
    losses = model.loss(torch.randn(2, 3, 32, 32), samples())
    # 2 decoder layers (deep supervision) x (CE, focal, Dice)
    assert len(losses) == 6 and 'decode.loss_mask' in losses
    sum(losses.values()).backward()
    head = model.decode_head
    assert head.void_embed.grad is not None
    assert model.backbone.stem[0].weight.grad is not None
    assert all(p.grad is None for p in head.region_classifier.parameters())
    model.zero_grad()


def test_inference_modes_and_vocabulary_swap(model):
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        fused = model._forward(x)
        model.decode_head.mode = 'seg'
        seg = model._forward(x)
        model.decode_head.mode = 'fusion'
        model.set_vocabulary(['cat', 'dog', 'sky', 'road'])
        four = model._forward(x)
        out = model.predict(x)
        model.set_vocabulary(['cat', 'dog', 'sky'])
    assert fused.shape == (1, 3, 8, 8) and four.shape == (1, 4, 8, 8)
    assert not torch.allclose(fused, seg)  # the CLIP branch changes scores
    assert out[0].pred_sem_seg.shape == (32, 32)
    assert int(out[0].pred_sem_seg.data.max()) < 4


def test_calibration_lowers_only_seen_classes(model):
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = model._forward(x)
        model.decode_head.calibration = 0.25
        calibrated = model._forward(x)
        model.decode_head.calibration = 0.0
    diff = calibrated - plain  # cat, dog seen; sky unseen
    torch.testing.assert_close(diff[:, :2], torch.full_like(diff[:, :2], -0.25))
    torch.testing.assert_close(diff[:, 2], torch.zeros_like(diff[:, 2]))


def test_fusion_matches_hand_computed_values():
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.1, 0.3, 0.6])
    seen = torch.tensor([True, True, False])
    lam = 2 / 3
    out = zegformer_fusion(p, q, seen, lam)
    mean_seen = (0.1 + 0.3) / 2
    expect = [0.5 ** lam * mean_seen ** (1 / 3), 0.3 ** lam * mean_seen ** (1 / 3),
              0.2 ** (1 / 3) * 0.6 ** lam]
    assert out.tolist() == pytest.approx(expect, rel=1e-5)
    # no seen class: every class is fused as unseen
    none = zegformer_fusion(p, q, torch.zeros(3, dtype=torch.bool), lam)
    assert none[0].item() == pytest.approx(0.5 ** (1 / 3) * 0.1 ** lam, rel=1e-5)


def test_image_branch_needs_region_classifier():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='region_classifier'):
        MODELS.build(zegformer_cfg(mode='img', region_classifier=None))


def test_mask_boxes_and_masked_crops():
    init_default_scope('mmseg')
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    boxes = mask_boxes(masks)
    assert boxes[0].tolist() == [3, 2, 9, 5]
    assert boxes[1].tolist() == [0, 0, 16, 16]  # empty: whole image
    classifier = MODELS.build(dict(REGION_CLIP, crop_size=8))
    image = torch.zeros(3, 16, 16)
    image[0, :, :8] = 200.0   # left half reddish
    image[2, :, 8:] = 150.0   # right half bluish
    left = torch.zeros(1, 16, 16, dtype=torch.bool)
    left[:, :, :8] = True
    crops, crop_masks = classifier.crop_regions(image, left)
    expect = classifier.normalize(image[:, :1, :1]).view(3, 1, 1).expand(3, 8, 8)
    torch.testing.assert_close(crops[0], expect)  # only the masked region
    assert crop_masks.all()
    classifier.crop_style = 'mask'  # whole image, filled outside the mask
    crops, crop_masks = classifier.crop_regions(image, left)
    assert crop_masks[0, :, :4].all() and not crop_masks[0, :, 4:].any()
    assert torch.count_nonzero(crops[0, :, :, 4:]) == 0  # CLIP mean colour = 0


# ------------------------------------------------- region classifier cost
def blob_masks(n=5, size=32, seed=1):
    """``n`` random rectangles (N, size, size) bool, the last one empty."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n - 1):
        y, x = torch.randint(0, size - 4, (2, ), generator=g).tolist()
        h, w = torch.randint(2, 12, (2, ), generator=g).tolist()
        masks[i, y:y + h, x:x + w] = True
    return masks


@pytest.mark.parametrize('mask_prompt_depth', [0, 1])
def test_crop_batch_size_gives_the_one_at_a_time_embeddings(mask_prompt_depth,
                                                            monkeypatch):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    classifier = MODELS.build(dict(REGION_CLIP, crop_batch_size=1,
                                   mask_prompt_depth=mask_prompt_depth)).eval()
    pixels = torch.rand(3, 32, 32) * 255
    masks = blob_masks()
    batches = []
    encode = classifier.encode
    monkeypatch.setattr(classifier, 'encode',
                        lambda crops, m=None: batches.append(len(crops)) or encode(crops, m))
    with torch.no_grad():
        one = classifier.region_embeddings(pixels, masks)
        out = {}
        for size in (2, 64):
            classifier.crop_batch_size = size
            out[size] = classifier.region_embeddings(pixels, masks)
    assert batches == [1] * 5 + [2, 2, 1] + [5]
    for size in (2, 64):
        torch.testing.assert_close(out[size], one, rtol=0, atol=1e-5)
    assert not torch.allclose(one[0], one[1])  # different crops, not a constant


def region_outputs(model, x, threshold, monkeypatch):
    """Head scores (B, C, h, w) with ``skip_score_threshold`` and the number of
    crops CLIP encoded; also the last layer's mask logits and class logits."""
    head = model.decode_head
    head.skip_score_threshold = threshold
    # random weights give every query the same saturated scores: spread them
    seg_logits = type(head).seg_logits

    def spread(states, class_embeds):
        logits = seg_logits(head, states, class_embeds) / 200
        ramp = torch.linspace(0, 4, logits.shape[1])[:, None]
        return logits + ramp * torch.eye(logits.shape[-1])[0]  # class 0 rises

    monkeypatch.setattr(head, 'seg_logits', spread)
    encoded = []
    encode = type(head.region_classifier).encode
    monkeypatch.setattr(head.region_classifier, 'encode',
                        lambda crops, m=None: encoded.append(len(crops)) or
                        encode(head.region_classifier, crops, m))
    with torch.no_grad():
        feats = model.extract_feat(x)
        embeds = model.class_embeddings()
        scores = head.forward(feats, embeds)
        masks, logits = head.forward_sets(feats, embeds)
    head.skip_score_threshold = 0.0
    return scores, sum(encoded), masks[-1], logits[-1]


def check_skipping(model, exponent, monkeypatch):
    """ZegFormer or OVSeg: threshold ~0 keeps everything (equal to the full computation); a
    threshold between the proposals' scores skips the low ones, whose score
    change is within ``t^exponent * sum of their sigmoid masks``."""
    torch.manual_seed(5)
    x = torch.randn(2, 3, 32, 32)
    full, n_full, masks, logits = region_outputs(model, x, 0.0, monkeypatch)
    tiny, n_tiny, _, _ = region_outputs(model, x, 1e-12, monkeypatch)
    assert torch.equal(tiny, full) and n_tiny == n_full
    nonempty = (torch.nn.functional.interpolate(
        masks, size=x.shape[-2:], mode='bilinear', align_corners=False
    ).sigmoid() > 0.5).flatten(2).any(-1)
    assert n_full == int(nonempty.sum()) >= 3
    score = logits.softmax(-1)[..., :-1].amax(-1)
    ranked = score[nonempty].sort().values
    t = float(ranked[1] + ranked[2]) / 2  # skips the two lowest-scored
    out, n_out, _, _ = region_outputs(model, x, t, monkeypatch)
    skipped = nonempty & (score < t)
    assert int(skipped.sum()) == 2 and n_out == n_full - 2
    bound = t ** exponent * (masks.sigmoid() * skipped[..., None, None]).sum(1)
    diff = (out - full).abs()
    assert diff.max() > 0  # approximate: the skipped crops mattered
    assert (diff <= bound[:, None] + 1e-6).all()


def test_skip_score_threshold_is_exact_at_zero_and_bounded(model, monkeypatch):
    model.eval()
    lam = model.decode_head.fusion_lambda
    check_skipping(model, min(lam, 1 - lam), monkeypatch)


def test_skip_score_threshold_is_checked():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='skip_score_threshold'):
        MODELS.build(zegformer_cfg(skip_score_threshold=1.5))
    with pytest.raises(ValueError, match="mode='fusion'"):
        MODELS.build(zegformer_cfg(mode='img', skip_score_threshold=0.2))


@pytest.mark.parametrize('mode', ['autocast', 'cast'])
def test_crops_run_under_the_segmentors_inference_dtype(monkeypatch, mode):
    """The crops' CLIP runs in the segmentor's ``inference_dtype``: under
    autocast (float32 weights, bf16 products) or, on the cast path (the
    default), with its weights cast once by the segmentor; training stays
    float32 (autocast path: the weights were never cast)."""
    import mmovss.models.utils.low_precision as lp
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=True, message=None, bf16_gflops=2.0, fp32_gflops=1.0))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    test_cfg = dict(mode='whole', inference_dtype='bf16')
    if mode == 'autocast':
        test_cfg['precision_mode'] = 'autocast'
    model = MODELS.build(dict(zegformer_cfg(), test_cfg=test_cfg)).eval()
    assert model._precision_mode() == mode
    classifier = model.decode_head.region_classifier
    assert classifier.inference_dtype == 'fp32'
    out_dtypes = []
    hooks = [m.register_forward_hook(lambda m, i, o: out_dtypes.append(o.dtype))
             for m in classifier.modules() if isinstance(m, torch.nn.Linear)]
    pixels = torch.rand(3, 32, 32) * 255
    masks = blob_masks()
    with torch.no_grad():
        fp32 = classifier.region_embeddings(pixels, masks)
        assert out_dtypes and set(out_dtypes) == {torch.float32}
        model._forward(torch.randn(1, 3, 32, 32))  # hands over test_cfg's dtype
        assert classifier.inference_dtype == 'bf16'
        assert classifier.precision_mode == mode
        weights = {m.weight.dtype for m in classifier.clip.visual.transformer.modules()
                   if isinstance(m, torch.nn.Linear)}
        assert weights == {torch.float32 if mode == 'autocast' else torch.bfloat16}
        out_dtypes.clear()
        bf16 = classifier.region_embeddings(pixels, masks)
        assert out_dtypes and set(out_dtypes) == {torch.bfloat16}
        if mode == 'autocast':
            classifier.train()  # training stays float32
            out_dtypes.clear()
            train = classifier.region_embeddings(pixels, masks)
            classifier.eval()
            assert set(out_dtypes) == {torch.float32}
            torch.testing.assert_close(train, fp32)
    for h in hooks:
        h.remove()
    assert bf16.dtype == torch.float32
    assert 0 < (bf16 - fp32).abs().max() < 0.03  # unit vectors, bf16 rounding
