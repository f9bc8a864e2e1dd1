"""CAT-Seg's fused inference paths equal the reference paths (tiny random models).

The fused paths (``fused=True``, default, under ``torch.no_grad``) keep the cost
embedding channels-last, split the guided projections into a per-token and a
per-view/per-class term, gather the Swin windows with one index and run the
decoder's first conv and transposed conv as products; the reference paths
(``fused=False``) are the layer-by-layer computation (mmseg's
``ShiftWindowMSA``, explicit concatenation of the guidance). Tolerance: 1e-5
absolute (float32 rounding of reordered sums; the values are O(1)).
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from mmovss.models.decode_heads.catseg_aggregation import (
    CATSegClassAggregation,
    CATSegSpatialAggregation,
    WindowLayout,
    elu_feature_map,
    elu_feature_map_,
)
from mmovss.models.decode_heads.catseg_head import CATSegUpBlock
from mmovss.models.text_encoders.catseg_text_encoder import TemplateClassEmbeddings
from mmovss.vocab import Vocabulary

from mmseg.models.backbones.swin import ShiftWindowMSA
from mmseg.registry import MODELS

ATOL = 1e-5


def _randomise(module, std=0.3, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)
    return module.eval()


def _both(module, *args, **kwargs):
    with torch.no_grad():
        module.fused = False
        ref = module(*args, **kwargs)
        module.fused = True
        fused = module(*args, **kwargs)
    return fused, ref


@pytest.mark.parametrize('hw,window,shift', [((4, 4), 2, 1), ((5, 7), 3, 1), ((8, 8), 12, 6),
                                             ((6, 4), 4, 0)])
def test_window_layout_is_the_order_of_shift_window_msa(hw, window, shift):
    """gather = pad + roll + window_partition of mmseg; scatter inverts it; same mask."""
    h, w = hw
    msa = ShiftWindowMSA(4, 1, window, shift_size=shift)
    seen = {}

    def capture(query, mask=None):
        seen['windows'], seen['mask'] = query.clone(), mask
        return query

    msa.w_msa.forward = capture
    x = torch.arange(1, h * w + 1, dtype=torch.float32)[None, :, None].expand(1, h * w, 4)
    with torch.no_grad():
        back = msa(x.contiguous(), hw)
    layout = WindowLayout(hw, window, shift)
    gathered = layout.gather(x[:, None].contiguous())[0, 0]
    assert torch.equal(gathered, seen['windows'].reshape(-1, 4))  # padding rows are 0
    assert torch.equal(layout.scatter(gathered[None, None])[0, 0], back[0])
    if shift:
        assert torch.equal(layout.mask, seen['mask'])
    else:
        assert layout.mask is None and seen['mask'] is None


@pytest.mark.parametrize('hw,window,guidance,chunk', [((8, 8), 12, 8, None), ((12, 12), 6, 4, 2),
                                                      ((6, 10), 4, 0, 3), ((8, 8), 4, 4, 1)])
def test_spatial_aggregation_fused_equals_reference(hw, window, guidance, chunk):
    layer = _randomise(CATSegSpatialAggregation(16, guidance, 4, window))
    x = torch.randn(2, 16, 5, *hw)
    g = torch.randn(2, guidance, *hw) if guidance else None
    fused, ref = _both(layer, x, g, chunk)
    torch.testing.assert_close(fused, ref, atol=ATOL, rtol=0)
    assert fused.permute(0, 2, 3, 4, 1).is_contiguous()  # channels-last view
    # a channels-last input (what the head passes) gives the same
    with torch.no_grad():
        again = layer(x.permute(0, 2, 3, 4, 1).contiguous().permute(0, 4, 1, 2, 3), g, chunk)
    torch.testing.assert_close(again, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize('guidance,pad_len,num,chunk', [(4, 12, 5, None), (4, 12, 5, 2),
                                                        (0, 0, 5, 2), (4, 0, 7, 3),
                                                        (0, 4, 3, None)])
def test_class_aggregation_fused_equals_reference(guidance, pad_len, num, chunk):
    layer = _randomise(CATSegClassAggregation(16, guidance, 4, 'linear', pad_len))
    x = torch.randn(2, num, 3, 5, 16).permute(0, 4, 1, 2, 3)  # channels-last
    g = torch.randn(2, num, guidance) if guidance else None
    fused, ref = _both(layer, x, g, class_chunk=chunk)
    torch.testing.assert_close(fused, ref, atol=ATOL, rtol=0)
    fused, ref = _both(layer, x.contiguous(), g, class_chunk=chunk)
    torch.testing.assert_close(fused, ref, atol=ATOL, rtol=0)


def test_elu_feature_map_in_place_is_the_same_function():
    x = torch.linspace(-30, 30, 10001)
    torch.testing.assert_close(elu_feature_map_(x.clone()), elu_feature_map(x),
                               atol=2.5e-7, rtol=1e-7)


@pytest.mark.parametrize('guidance', [4, 0])
def test_up_block_fused_equals_reference(guidance):
    block = _randomise(CATSegUpBlock(16, 8, guidance), std=0.2)
    x = torch.randn(6, 16, 5, 7)  # 2 views x 3 classes
    g = torch.randn(2, guidance, 10, 14) if guidance else None
    fused, ref = _both(block, x, g)
    torch.testing.assert_close(fused, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize('pad_len,chunk', [(0, None), (5, 2), (16, 3)])
def test_head_fused_equals_reference(pad_len, chunk):
    head = dict(
        type='CATSegHead', in_channels=(24, 24, 16), channels=16, num_templates=2,
        text_guidance_channels=8, appearance_guidance_channels=8, decoder_channels=(16, 8),
        decoder_guidance_channels=(16, 8), decoder_guidance_proj_channels=(4, 4),
        num_layers=2, num_heads=4, window_size=4, pad_len=pad_len,
        class_chunk_size=chunk,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    head = _randomise(MODELS.build(head), std=0.2)
    gen = torch.Generator().manual_seed(1)
    feats = (torch.randn(2, 24, 6, 6, generator=gen), torch.randn(2, 24, 6, 6, generator=gen),
             torch.randn(2, 16, 6, 6, generator=gen))
    text = F.normalize(torch.randn(7, 2, 16, generator=gen), dim=-1)
    embeds = TemplateClassEmbeddings(
        F.normalize(text.mean(1), dim=-1), torch.arange(7),
        Vocabulary.build([f'class{i}' for i in range(7)]), template_embeds=text)
    fused, ref = _both(head, feats, embeds)
    assert fused.shape == (2, 7, 24, 24)
    torch.testing.assert_close(fused, ref, atol=ATOL, rtol=0)
    assert all(m.fused for m in head.modules() if hasattr(m, 'fused'))


def test_fused_path_is_not_taken_with_autograd(monkeypatch):
    layer = _randomise(CATSegSpatialAggregation(16, 4, 4, 4))
    calls = []
    monkeypatch.setattr(layer, '_forward_fused', lambda *a: calls.append(1))
    out = layer(torch.randn(1, 16, 2, 4, 4), torch.randn(1, 4, 4, 4))
    assert out.requires_grad and not calls
    with torch.no_grad():
        layer(torch.randn(1, 16, 2, 4, 4), torch.randn(1, 4, 4, 4))
    assert calls == [1]


def test_skipped_copies_of_dropped_classes_keep_the_labels():
    """A-847-like: more names than pad_len; the labels equal the argmax of all
    the probabilities (return_logits computes every class)."""
    from mmovss.converters import catseg_official
    from mmovss.testing.official_parity import default_fixture_root, load_fixture
    from mmovss.testing.official_parity.catseg import regenerate, tiny_model_cfg
    fixture = load_fixture(osp.join(default_fixture_root(), 'catseg', 'seed0'))
    state = {k: v.float() for k, v in fixture.state_dict.items()}
    for key, spec in fixture.meta['regenerated'].items():
        state[key] = regenerate(spec)
    cfg = tiny_model_cfg(fixture.meta, 'catseg_slide')
    cfg['decode_head']['pad_len'] = 3
    model = MODELS.build(copy.deepcopy(cfg))
    model.load_state_dict(catseg_official.convert(state), strict=True)
    model.eval().set_vocabulary(['cat', 'sky', 'grass', 'tree', 'road', 'car', 'dog'])
    x = torch.randn(1, 3, 50, 60, generator=torch.Generator().manual_seed(0))
    selected = []
    resized_classes = model.resized_classes

    def spy(logits):
        selected.append(resized_classes(logits))
        return selected[-1]

    model.resized_classes = spy
    with torch.no_grad():
        model.test_cfg['return_logits'] = False
        fast = model.predict(x)[0].pred_sem_seg.data[0]
        model.test_cfg['skip_dropped_classes'] = False  # the reference: every class resized
        every = model.predict(x)[0].pred_sem_seg.data[0]
        model.test_cfg['return_logits'] = True
        full = model.predict(x)[0]
    # each view aggregates its own top 3: some names are dropped in all 5 views
    select = selected[0]
    assert len(selected) == 1 and select is not None and 4 <= len(select) < 7
    assert torch.equal(select, select.sort().values)
    assert torch.equal(fast, full.seg_logits.data.argmax(0))
    assert torch.equal(fast, full.pred_sem_seg.data[0])
    assert torch.equal(fast, every)
