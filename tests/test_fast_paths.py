"""Fast paths leave the outputs unchanged (issue #11, "Performance").

* SDPA: every attention of the training-free last-block modes and of CLIP's
  ordinary blocks goes through ``F.scaled_dot_product_attention`` (counted
  here) and equals the written-out softmax formula within 1e-5 (float32);
* mixed precision: ``test_cfg.inference_dtype='bf16'`` autocasts the towers
  (checked by the dtype of their matrix products), keeps LayerNorm inputs
  and the returned logits in float32, and agrees with float32;
* large vocabularies: the window logits are expanded a chunk of classes at a
  time; no float tensor as large as all classes at full resolution is ever
  created (every aten op's output is inspected), and the labels equal the
  dense path's.
"""
import copy
import os

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mmovss.models.backbones import LAST_BLOCK_MODES
from mmovss.models.backbones.training_free_modes import explicit_attention
from mmovss.models.utils import inference_autocast
from mmovss.models.utils.clip_attention import clip_block
from mmovss.testing.clip import tiny_clip_cfg

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = tiny_clip_cfg('vit')  # patch 8, width 64, 2 heads, 2 blocks, joint 32
TF_MODES = ('maskclip', 'maskclip_noresidual', 'vanilla_noresidual', 'sclip',
            'clearclip', 'naclip')
#: SDPA calls of each mode's last block
MODE_SDPA_CALLS = dict(maskclip=0, maskclip_noresidual=0,
                       vanilla_noresidual=1, sclip=2, clearclip=1, naclip=1,
                       vanilla=1)
FLOAT32_ATOL = 1e-5


class Counter:
    """Counts calls of a function while delegating to it."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def counted(monkeypatch):
    """Counters on SDPA, softmax and PyTorch's fused MHA kernel."""
    counters = dict(sdpa=Counter(F.scaled_dot_product_attention),
                    softmax=Counter(F.softmax),
                    native_mha=Counter(torch._native_multi_head_attention))
    monkeypatch.setattr(F, 'scaled_dot_product_attention', counters['sdpa'])
    monkeypatch.setattr(F, 'softmax', counters['softmax'])
    monkeypatch.setattr(torch, '_native_multi_head_attention',
                        counters['native_mha'])
    return counters


def backbone(mode, **kwargs):
    torch.manual_seed(0)
    bb = MODELS.build(dict(type='TrainingFreeCLIPViT', model_cfg=CFG,
                           last_block_mode=mode, **kwargs)).eval()
    with torch.no_grad():  # random biases / norms: every term matters
        for name, p in bb.named_parameters():
            if name.endswith('bias') or 'ln_' in name:
                p.add_(0.1 * torch.randn_like(p))
    return bb


def explicit_forward(bb, x):
    """The backbone with open_clip's own blocks and written-out modes."""
    tokens, grid = bb.embed(x)
    blocks = bb.visual.transformer.resblocks
    for block in blocks[:-1]:
        tokens = block(tokens)  # nn.MultiheadAttention (fused MHA kernel)
    with explicit_attention():
        if bb.last_block_mode == 'vanilla':
            tokens = blocks[-1](tokens)
        else:
            tokens = bb.forward_last_block(blocks[-1], tokens, grid)
    return bb.project_dense(tokens, grid)


# ------------------------------------------------------------------ SDPA
@pytest.mark.parametrize('mode', TF_MODES + ('vanilla', ))
def test_sdpa_modes_equal_the_explicit_formulas(mode, counted):
    options = dict(last_block_options=dict(gaussian_std=3.0)) \
        if mode == 'naclip' else {}
    bb = backbone(mode, **options)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 40, 56)  # 5 x 7 patches
    with torch.no_grad():
        fast = bb(x)[-1]
        fast_calls = {k: c.calls for k, c in counted.items()}
        slow = explicit_forward(bb, x)
    blocks = len(bb.visual.transformer.resblocks)
    # the fast path: SDPA everywhere, no softmax and no fused MHA kernel
    assert fast_calls == dict(sdpa=blocks - 1 + MODE_SDPA_CALLS[mode],
                              softmax=0, native_mha=0)
    # the explicit path really is another computation
    assert counted['native_mha'].calls - fast_calls['native_mha'] == \
        blocks - (0 if mode == 'vanilla' else 1)
    torch.testing.assert_close(fast, slow, rtol=0, atol=FLOAT32_ATOL)
    assert (fast - slow).abs().max() > 0 or mode.startswith('maskclip')


def test_explicit_attention_is_the_formula_and_restores(counted):
    """Inside ``explicit_attention`` SCLIP materialises its two softmaxes."""
    bb = backbone('sclip')
    block = bb.visual.transformer.resblocks[-1]
    x, grid = bb.embed(torch.randn(1, 3, 24, 32))
    with torch.no_grad():
        with explicit_attention():
            LAST_BLOCK_MODES['sclip'](block, x, grid)
        assert counted['softmax'].calls == 2
        LAST_BLOCK_MODES['sclip'](block, x, grid)
    assert counted['softmax'].calls == 2  # restored: SDPA again
    assert counted['sdpa'].calls == 2


@pytest.mark.parametrize('mask', [None, 'causal_float', 'causal_bool'])
def test_clip_block_equals_open_clip_block(mask, counted):
    """Vision blocks (no mask) and text blocks (causal mask), with grads."""
    torch.manual_seed(0)
    bb = backbone('vanilla')
    block = bb.visual.transformer.resblocks[0]
    n = 9
    attn_mask = None
    if mask == 'causal_float':
        attn_mask = torch.full((n, n), float('-inf')).triu_(1)
    elif mask == 'causal_bool':
        # open_clip casts masks to the tokens' dtype: True adds 1
        attn_mask = torch.ones(n, n, dtype=torch.bool).triu_(1)
    x = torch.randn(3, n, 64)
    with torch.no_grad():
        want = block(x, attn_mask=attn_mask)
        before = counted['sdpa'].calls  # MHA with a mask calls SDPA too
        got = clip_block(block, x, attn_mask=attn_mask)
    torch.testing.assert_close(got, want, rtol=0, atol=FLOAT32_ATOL)
    assert counted['sdpa'].calls - before == 1
    # training with gradients (e.g. CAT-Seg's attention fine-tuning)
    block.train().requires_grad_(True)
    x1 = x.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)
    block(x1, attn_mask=attn_mask).square().sum().backward()
    g_ref = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    clip_block(block, x2, attn_mask=attn_mask).square().sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-5, atol=1e-4)
    for p, g in zip(block.parameters(), g_ref):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-4)


def test_clip_block_falls_back_for_other_blocks(counted):
    from open_clip.transformer import ResidualAttentionBlock
    torch.manual_seed(0)
    cross = ResidualAttentionBlock(32, 2, is_cross_attention=True).eval()
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(clip_block(cross, x), cross(x))
    assert counted['sdpa'].calls == 0  # its own forward ran


def test_text_tower_runs_sdpa_and_equals_open_clip(counted):
    import open_clip
    torch.manual_seed(0)
    encoder = MODELS.build(dict(type='OpenCLIPTextEncoder', model_cfg=CFG,
                                templates='single'))
    clip = open_clip.CLIP(**copy.deepcopy(CFG)).eval()
    clip.load_state_dict({**clip.state_dict(), **{
        k: v for k, v in encoder.tower.state_dict().items()
        if k in clip.state_dict()}})
    tokens = encoder.tokenize(['a photo of a cat.', 'road'])
    with torch.no_grad():
        ours = encoder.encode_prompts(['a photo of a cat.', 'road'], tokens)
        assert counted['sdpa'].calls == len(encoder.tower.transformer.resblocks)
        theirs = F.normalize(clip.encode_text(tokens), dim=-1)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=FLOAT32_ATOL)


def test_decoder_attention_layers_skip_the_weights(monkeypatch):
    """ZegFormer/FC-CLIP decoders ask MHA for no weights (its SDPA path)."""
    from mmovss.models.utils.query_decoder_layer import QueryDecoderLayer
    seen = []
    forward = nn.MultiheadAttention.forward

    def spy(self, *args, need_weights=True, **kwargs):
        seen.append(need_weights)
        return forward(self, *args, need_weights=need_weights, **kwargs)

    torch.manual_seed(0)
    q, pos = torch.randn(2, 4, 16), torch.randn(2, 4, 16)
    mem, mem_pos = torch.randn(2, 6, 16), torch.randn(2, 6, 16)
    layers = [
        (QueryDecoderLayer(16, 2, 32, 0.0).eval(), (q, pos, mem, mem_pos)),
        (QueryDecoderLayer(16, 2, 32, cross_first=True).eval(),
         (q, pos, mem, mem_pos, torch.rand(4, 4, 6) < 0.3)),
    ]
    for layer, args in layers:
        monkeypatch.setattr(nn.MultiheadAttention, 'forward', spy)
        with torch.no_grad():
            fast = layer(*args)
        assert seen and not any(seen)
        seen.clear()
        # the weights-returning path (explicit softmax) gives the same
        monkeypatch.setattr(
            nn.MultiheadAttention, 'forward',
            lambda self, *a, need_weights=True, **k: forward(
                self, *a, need_weights=True, **k))
        with torch.no_grad():
            slow = layer(*args)
        torch.testing.assert_close(fast, slow, rtol=0, atol=FLOAT32_ATOL)


# ------------------------------------------------------- mixed precision
def segmentor(head='TrainingFreeHead', vocabulary=None, **test_cfg):
    torch.manual_seed(0)
    head_cfg = dict(type=head, in_channels=32)
    model_type = 'OpenVocabEncoderDecoder'
    if head == 'TrainingFreeHead':
        model_type = 'TrainingFreeSegmentor'
        head_cfg.update(logit_scale=40.0, prob_thd=0.1, background_index=0)
    model = MODELS.build(dict(
        type=model_type,
        vocabulary=vocabulary or ['sky, clouds', 'cat', 'dog', 'road',
                                  'tree, bush'],
        backbone=dict(type='TrainingFreeCLIPViT', model_cfg=CFG,
                      last_block_mode='clearclip'),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG,
                          templates='single'),
        decode_head=head_cfg,
        test_cfg=dict(dict(mode='slide', crop_size=(32, 32), stride=(16, 16),
                           crop_batch_size=4), **test_cfg))).eval()
    return model


def sample(ori, img, **meta):
    return SegDataSample(metainfo=dict(ori_shape=ori, img_shape=img,
                                       pad_shape=img, **meta))


def photo(h, w):
    """A smooth random image (so neighbouring windows agree)."""
    torch.manual_seed(3)
    x = torch.randn(1, 3, h // 8, w // 8)
    return F.interpolate(x, size=(h, w), mode='bilinear',
                         align_corners=False)


def ovshapes_segmentor(head, **test_cfg):
    """The shipped OVShapes tiny CLIP (trained), ClearCLIP last block."""
    from mmovss.ovshapes import world
    assets = os.path.join(REPO, 'mmovss', 'assets', 'ovshapes_tiny_clip.pt')
    clip = dict(model_cfg=dict(
        embed_dim=64,
        vision_cfg=dict(image_size=64, layers=3, width=128, patch_size=8,
                        head_width=32),
        text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2,
                      layers=3)), pretrained=assets)
    head_cfg = dict(type=head, in_channels=64)
    model_type = 'OpenVocabEncoderDecoder'
    if head == 'TrainingFreeHead':
        model_type = 'TrainingFreeSegmentor'
        head_cfg.update(logit_scale=40.0, background_index=None)
    return MODELS.build(dict(
        type=model_type, vocabulary=list(world.class_names()),
        backbone=dict(type='TrainingFreeCLIPViT', last_block_mode='clearclip',
                      **clip),
        text_encoder=dict(type='OpenCLIPTextEncoder',
                          templates=['a {} object.', 'a picture of {}.',
                                     '{}.'], **clip),
        decode_head=head_cfg,
        test_cfg=dict(mode='whole', **test_cfg))).eval()


def ovshapes_scenes(num):
    """``num`` OVShapes scenes, 64 x 64, CLIP-normalised (B, 3, 64, 64)."""
    import numpy as np

    from mmovss.ovshapes import world
    images = [world.render_scene(np.random.default_rng(100 + i)).image
              for i in range(num)]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor([122.771, 116.746, 104.094]).view(1, 3, 1, 1)
    std = torch.tensor([68.501, 66.632, 70.323]).view(1, 3, 1, 1)
    return (x - mean) / std


#: bf16 vs fp32 on the trained OVShapes CLIP: max |difference| of cosine
#: similarities (the logits before any temperature; measured 0.003) and of
#: text embeddings (measured 0.0016); labels agree on 99.8% of pixels
BF16_SIM_ATOL = 0.01
BF16_TEXT_ATOL = 0.005


@pytest.mark.parametrize('head', ['TrainingFreeHead', 'CLIPCosineHead'])
def test_bf16_inference_agrees_with_fp32(head):
    fp32 = ovshapes_segmentor(head)
    # the autocast path (the cast-once default is tested in test_low_precision.py)
    bf16 = ovshapes_segmentor(head, inference_dtype='bf16', precision_mode='autocast')
    x = ovshapes_scenes(8)
    metas = [dict(ori_shape=(64, 64), img_shape=(64, 64),
                  pad_shape=(64, 64)) for _ in range(len(x))]
    low_precision, ln_inputs = [], []
    hooks = [m.register_forward_hook(
        lambda m, i, o: low_precision.append(o.dtype == torch.bfloat16))
        for m in bf16.backbone.modules() if isinstance(m, nn.Linear)]
    hooks += [m.register_forward_hook(
        lambda m, i, o: ln_inputs.append(i[0].dtype))
        for m in bf16.backbone.modules() if isinstance(m, nn.LayerNorm)]
    samples = [SegDataSample(metainfo=m) for m in metas]
    with torch.no_grad():
        ref = fp32.predict(x, copy.deepcopy(samples))
        out = bf16.predict(x, copy.deepcopy(samples))
        emb32 = fp32.class_embeddings()
        emb16 = bf16.class_embeddings()
        logits32 = fp32.inference(x, metas)
        logits16 = bf16.inference(x, metas)
    for h in hooks:
        h.remove()
    assert low_precision and all(low_precision)  # autocast was on
    assert set(ln_inputs) == {torch.float32}  # LayerNorm in float32
    assert emb16.embeds.dtype == logits16.dtype == torch.float32
    assert 0 < (emb16.embeds - emb32.embeds).abs().max() < BF16_TEXT_ATOL
    if head == 'CLIPCosineHead':  # CLIP's learned temperature
        logits32 = logits32 / emb32.logit_scale
        logits16 = logits16 / emb16.logit_scale
    assert (logits16 - logits32).abs().max() < BF16_SIM_ATOL
    pred32 = torch.cat([s.pred_sem_seg.data for s in ref])
    pred16 = torch.cat([s.pred_sem_seg.data for s in out])
    assert len(pred32.unique()) > 4
    assert (pred16 == pred32).float().mean() >= 0.99


def test_bf16_catseg_keeps_per_template_text_embeddings():
    """CAT-Seg's text encoder under autocast: float32, its own type."""
    from test_catseg import MODEL as CATSEG
    torch.manual_seed(0)
    cfg = copy.deepcopy(CATSEG)
    cfg['test_cfg'] = dict(mode='whole', inference_dtype='bf16', precision_mode='autocast')
    model = MODELS.build(cfg).eval()
    model.set_vocabulary(['cat', 'dog', 'sky'])
    x = photo(40, 40)
    with torch.no_grad():
        embeds = model.class_embeddings()
        logits = model.inference(x, [dict(ori_shape=(40, 40),
                                          img_shape=(40, 40),
                                          pad_shape=(40, 40))])
        model.test_cfg['inference_dtype'] = 'fp32'
        ref = model.inference(x, [dict(ori_shape=(40, 40), img_shape=(40, 40),
                                       pad_shape=(40, 40))])
    assert type(embeds).__name__ == 'TemplateClassEmbeddings'
    assert embeds.template_embeds.dtype == torch.float32
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert not torch.equal(logits, ref)
    assert (logits.argmax(1) == ref.argmax(1)).float().mean() > 0.9


def test_inference_dtype_is_checked():
    with pytest.raises(ValueError, match="inference_dtype='fp8'"):
        segmentor(inference_dtype='fp8')
    model = segmentor(inference_dtype='fp16')
    with pytest.raises(ValueError, match='needs a CUDA device'):
        with torch.no_grad():
            model.predict(photo(32, 32), [sample((32, 32), (32, 32))])
    with pytest.raises(ValueError, match='CUDA'):
        inference_autocast('fp16', 'cpu')


def test_bf16_text_embeddings_are_cached_apart():
    model = segmentor(inference_dtype='bf16', precision_mode='autocast')
    encoder = model.text_encoder
    with torch.no_grad():
        bf16 = model.class_embeddings().embeds
        model.test_cfg['inference_dtype'] = 'fp32'
        fp32 = model.class_embeddings().embeds
        model.test_cfg['inference_dtype'] = 'bf16'
        again = model.class_embeddings().embeds
    assert not torch.equal(bf16, fp32) and torch.equal(bf16, again)
    assert encoder.compute_dtype() == 'torch.float32'
    with inference_autocast('bf16', 'cpu'):
        assert encoder.compute_dtype().endswith('autocast:torch.bfloat16')


# ----------------------------------------------------- large vocabularies
class MaxFloatTensor(TorchDispatchMode):
    """Records the largest floating-point tensor any aten op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.shape = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out, )):
            if torch.is_tensor(t) and t.is_floating_point() and \
                    t.numel() > self.largest:
                self.largest, self.shape = t.numel(), tuple(t.shape)
        return out


VOCAB = ['background'] + [f'thing {i}, item {i}' if i % 7 == 0 else
                          f'thing {i}' for i in range(1, 120)]


@pytest.mark.parametrize('head', ['TrainingFreeHead', 'CLIPCosineHead'])
def test_large_vocabulary_never_builds_all_classes_at_full_size(head):
    """120 classes (137 names), 64 x 80 input, 72 x 90 original image."""
    model = segmentor(head, vocabulary=VOCAB, resize_class_chunk=16)
    if head == 'TrainingFreeHead':
        model.decode_head.class_chunk = 16
        model.decode_head.area_thd = 0.05
        model.decode_head.cache_elements = 0  # recompute: the leanest path
    x = photo(64, 80)
    samples = [sample((72, 90), (64, 80))]
    with torch.no_grad():
        embeds = model.class_embeddings()
        # all maps (names for TrainingFreeHead, classes otherwise) at the
        # input size
        num = embeds.num_names if head == 'TrainingFreeHead' else \
            embeds.num_classes
        full = num * 64 * 80
        with MaxFloatTensor() as lean:
            out = model.predict(x, copy.deepcopy(samples))[0]
        # the dense path: mmseg's window average of all classes, then the
        # same post-processing
        with MaxFloatTensor() as dense_mode:
            dense = model.inference(x, [samples[0].metainfo], embeds)
        if head == 'TrainingFreeHead':
            ref = model.postprocess_result(dense, copy.deepcopy(samples), x,
                                           embeds)[0]
        else:
            ref = model.postprocess_result(dense, copy.deepcopy(samples))[0]
    assert dense_mode.largest >= full  # the measurement can see it ...
    # ... and the chunked path's largest float tensor holds about one
    # chunk of classes at full size (plus a few (H, W) maps)
    assert lean.largest <= 24 * 72 * 90, lean.shape
    assert lean.largest < full / 4
    assert torch.equal(out.pred_sem_seg.data, ref.pred_sem_seg.data)


def test_chunked_window_average_equals_mmseg_slide():
    model = segmentor('CLIPCosineHead', vocabulary=VOCAB)
    x = photo(64, 80)
    metas = [dict(ori_shape=(64, 80), img_shape=(64, 80), pad_shape=(64, 80))]
    with torch.no_grad():
        dense = model.slide_inference(x, metas)
        lazy = model.chunked_inference(x, metas)
        maps = lazy.image_maps(0)
        pieces = torch.cat([maps.chunk(s, s + 13)
                            for s in range(0, maps.num_channels, 13)])
        model.test_cfg['mode'] = 'whole'
        whole = model.inference(x, metas)
        whole_lazy = model.chunked_inference(x, metas).dense()
    # the same operations per class: equal up to float rounding (the window
    # upsampling by two products on CPU, models/utils/separable_resize.py,
    # and the resize vectorised over a different number of channels)
    torch.testing.assert_close(lazy.dense(), dense, rtol=0, atol=1e-6)
    torch.testing.assert_close(pieces, dense[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(whole_lazy, whole, rtol=0, atol=1e-6)


def test_chunked_postprocessing_handles_padding_flip_and_pamr():
    model = segmentor(vocabulary=VOCAB[:30])
    model.decode_head.pamr = MODELS.build(dict(type='PAMR', num_iter=2,
                                               dilations=(1, 2)))
    model.decode_head.class_chunk = 4
    x = photo(64, 80)
    samples = [sample((50, 70), (56, 72), padding_size=[0, 8, 0, 8],
                      flip=True, flip_direction='horizontal')]
    with torch.no_grad():
        embeds = model.class_embeddings()
        out = model.predict(x, copy.deepcopy(samples))[0]
        dense = model.inference(x, [samples[0].metainfo], embeds)
        ref = model.postprocess_result(dense, copy.deepcopy(samples), x,
                                       embeds)[0]
    assert out.pred_sem_seg.data.shape == (1, 50, 70)
    assert torch.equal(out.pred_sem_seg.data, ref.pred_sem_seg.data)
    assert len(out.pred_sem_seg.data.unique()) > 1


def test_slide_logits_dense_canvas_when_windows_are_not_low_res():
    """Windows whose logits outnumber the image's pixels go to a canvas."""
    from mmovss.models.segmentors import OpenVocabEncoderDecoder
    from mmovss.models.utils import SlideLogits
    torch.manual_seed(0)
    boxes = OpenVocabEncoderDecoder.crop_boxes((40, 52), (24, 24), (12, 12))
    windows = [torch.randn(7, 24, 24) for _ in boxes]  # window-size logits
    kept = SlideLogits(1, 7, (40, 52), False)  # num_windows unknown: keep
    dense = SlideLogits(1, 7, (40, 52), False, num_windows=len(boxes))
    small = SlideLogits(1, 7, (40, 52), False, num_windows=len(boxes))
    for box, logits in zip(boxes, windows):
        kept.add(0, box, logits)
        dense.add(0, box, logits)
        small.add(0, box, logits[:, ::6, ::6])
    assert dense.canvases[0] is not None and not dense.windows[0]
    assert small.canvases[0] is None and len(small.windows[0]) == len(boxes)
    for s, e in ((0, 3), (3, 7)):
        torch.testing.assert_close(dense.average(0, s, e),
                                   kept.average(0, s, e), rtol=0, atol=1e-6)


def test_slide_logits_single_whole_window_is_its_resize():
    """'whole' inference (one window covering the image) skips the canvas:
    the same values as the canvas computation, for every class chunk; a
    window that does not cover the image still takes the canvas."""
    from mmovss.models.utils import SlideLogits
    torch.manual_seed(0)
    logits = torch.randn(7, 10, 13)
    whole = SlideLogits(1, 7, (40, 52), False)
    canvas = SlideLogits(1, 7, (40, 52), False, num_windows=1, max_kept_ratio=0.0)
    for maps in (whole, canvas):
        maps.add(0, (0, 40, 0, 52), logits)
    assert canvas.canvases[0] is not None and whole.canvases[0] is None
    for s, e in ((0, 3), (3, 7)):
        torch.testing.assert_close(whole.average(0, s, e), canvas.average(0, s, e),
                                   rtol=0, atol=0)
    part = SlideLogits(1, 7, (40, 52), False)
    part.add(0, (0, 40, 0, 26), logits)
    with pytest.raises(RuntimeError, match='do not cover'):
        part.average(0, 0, 7)
