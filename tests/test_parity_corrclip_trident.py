"""Parity of CorrCLIP with its published implementation (CorrCLIPv1).

The fixture (``corrclip.json`` + ``corrclip.npz``, made by
``tools/parity/corrclip_reference.py`` from the official code; README in
``tests/data/parity_corrclip_trident/``) is read from ``MMOVSS_PARITY_DIR``
when that directory holds one, else from the committed
``tests/data/parity_corrclip_trident/``. Files the fixture shares with the
training-free set A (the tiny CLIP weights and the image) are looked up in
the fixture directory first, then in ``MMOVSS_PARITY_DIR`` (default
``../shared/parity/A``); without them the test is skipped.

Our model is ``configs/corrclip/corrclip_vit-b16-dino-b8_voc21.py`` with
overrides taken from the JSON only (tiny CLIP/DINO, the fixture's fixed
masks through ``FileMaskGenerator``, the adapted spatial-branch layer), and
every stored array is compared: text embeddings, the first window's DINO
``q + k`` features, merged regions, scope-reconstructed attention, the three
branches and the fused features (each <= 1e-4), the window average at the
original size (<= 1e-4) and the labels after the map correction (>= 99.9%
equal).
"""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_low_precision import TINY_AGREEMENT, linear_dtypes
from test_parity import FLOAT_ATOL, PRED_AGREEMENT

import mmovss  # noqa: F401
from mmovss.models.backbones.tower_context import record_stages
from mmovss.models.utils import low_precision as lp
from mmovss.testing.corrclip_trident_runs import (
    CorrCLIPRun,
    TridentRun,
    fixture_dir,
    missing_reason,
)

CORRCLIP_DIR = fixture_dir('corrclip')
CORRCLIP_JSON = os.path.join(CORRCLIP_DIR, 'corrclip.json')


@pytest.fixture(scope='module')
def corrclip():
    reason = missing_reason(CORRCLIP_DIR, CORRCLIP_JSON)
    if reason:
        pytest.skip(f'CorrCLIP parity: {reason}')
    with torch.no_grad():
        yield CorrCLIPRun(CORRCLIP_DIR, CORRCLIP_JSON)


CHECKED = {'text_embeddings', 'query_idx', 'crop0_vfm_features',
           'crop0_region_partition', 'crop0_attn_weights', 'crop0_branches',
           'crop0_patch_features_unnormalized', 'ori_logits', 'pred'}


def test_every_stored_array_is_checked(corrclip):
    unknown = set(corrclip.expected.files) - CHECKED
    assert not unknown, f'fixture arrays without a check: {sorted(unknown)}'


def test_text_embeddings(corrclip):
    with torch.no_grad():
        embeds = corrclip.model.class_embeddings()
    assert list(embeds.vocabulary.names) == corrclip.meta['query_words']
    assert embeds.name_to_class.tolist() == \
        corrclip.expected['query_idx'].tolist()
    np.testing.assert_allclose(embeds.embeds.numpy(),
                               corrclip.expected['text_embeddings'], rtol=0,
                               atol=FLOAT_ATOL)


def _partition(ids: np.ndarray) -> np.ndarray:
    """Ids relabelled 0, 1, ... by first row-major occurrence."""
    _, first, inverse = np.unique(ids.ravel(), return_index=True,
                                  return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse].reshape(ids.shape)


def test_first_window_stages(corrclip):
    run, expected = corrclip, corrclip.expected
    inputs, samples = run.data()
    assert list(inputs.shape[2:]) == run.meta['resized_hw']
    boxes = run.model.crop_boxes(inputs.shape[2:],
                                 run.model.test_cfg.crop_size,
                                 run.model.test_cfg.stride)
    assert [list(b) for b in boxes] == \
        run.meta['slide']['crop_windows_y1y2x1x2']
    y1, y2, x1, x2 = boxes[0]
    backbone = run.model.backbone
    with torch.no_grad(), record_stages() as stages:
        regions = run.model.input_regions(inputs,
                                          [s.metainfo for s in samples])
        backbone.crop_regions = regions[:, y1:y2, x1:x2]
        try:
            dense = backbone(inputs[:, :, y1:y2, x1:x2])[-1]
        finally:
            backbone.crop_regions = None
    np.testing.assert_allclose(stages['corrclip.vfm_features'][0].numpy(),
                               expected['crop0_vfm_features'], rtol=0,
                               atol=FLOAT_ATOL)
    np.testing.assert_array_equal(
        _partition(stages['corrclip.groups'][0].numpy()),
        expected['crop0_region_partition'])
    step = int(run.meta['row_subsample'])
    np.testing.assert_allclose(
        stages['corrclip.attention'][0][::step].numpy(),
        expected['crop0_attn_weights'], rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_allclose(
        stages['corrclip.branches'][0][:, ::step].numpy(),
        expected['crop0_branches'], rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_allclose(dense[0].flatten(1).T.numpy(),
                               expected['crop0_patch_features_unnormalized'],
                               rtol=0, atol=FLOAT_ATOL)


def _spy(obj, name: str, calls: list):
    """Records the return values of ``obj.name`` (an instance override)."""
    method = getattr(obj, name)

    def spy(*args, **kwargs):
        calls.append(method(*args, **kwargs))
        return calls[-1]

    setattr(obj, name, spy)


def test_window_average_and_predictions(corrclip):
    """One ``predict``: its window average (resized to the original size)
    and its labels after the map correction."""
    run = corrclip
    inputs, samples = run.data()
    windows = []
    _spy(run.model, 'chunked_inference', windows)
    try:
        with torch.no_grad():
            out = run.model.predict(inputs, samples)
    finally:
        del run.model.chunked_inference
    sims = F.interpolate(windows[0].dense(),
                         size=tuple(run.meta['original_hw']),
                         mode='bilinear', align_corners=False)
    step = int(run.meta['ori_logits_subsample'])
    np.testing.assert_allclose(sims[0, :, ::step, ::step].numpy(),
                               run.expected['ori_logits'], rtol=0,
                               atol=FLOAT_ATOL)
    pred = out[0].pred_sem_seg.data[0].numpy()
    expected = run.expected['pred']
    assert pred.shape == expected.shape
    assert float((pred == expected).mean()) >= PRED_AGREEMENT


# ----------------------------------------------------------------- Trident
TRIDENT_DIR = fixture_dir('trident')
TRIDENT_JSON = os.path.join(TRIDENT_DIR, 'trident.json')


@pytest.fixture(scope='module')
def trident():
    reason = missing_reason(TRIDENT_DIR, TRIDENT_JSON)
    if reason:
        pytest.skip(f'Trident parity: {reason}')
    with torch.no_grad():
        yield TridentRun(TRIDENT_DIR, TRIDENT_JSON)


TRIDENT_CHECKED = {'text_embeddings', 'query_idx', 'sam_weight_rows',
                   'sam_weights', 'dense_features', 'ori_logits', 'pred'}


def test_trident_every_stored_array_is_checked(trident):
    unknown = set(trident.expected.files) - TRIDENT_CHECKED
    assert not unknown, f'fixture arrays without a check: {sorted(unknown)}'


def test_trident_text_embeddings(trident):
    with torch.no_grad():
        embeds = trident.model.class_embeddings()
    assert list(embeds.vocabulary.names) == trident.meta['query_words']
    np.testing.assert_allclose(embeds.embeds.numpy(),
                               trident.expected['text_embeddings'], rtol=0,
                               atol=FLOAT_ATOL)


def test_trident_stages_logits_and_predictions(trident):
    """SAM weights, dense features, logits at the original size, labels."""
    run, expected = trident, trident.expected
    inputs, samples = run.data()
    assert list(inputs.shape[2:]) == run.meta['resized_hw']
    model = run.model
    similarities = []
    _spy(model, 'image_similarities', similarities)
    try:
        with torch.no_grad(), record_stages() as stages:
            out = model.predict(inputs, samples)
    finally:
        del model.image_similarities
    sims = similarities[0][None]
    dense = stages['trident.dense']
    rows = expected['sam_weight_rows']
    np.testing.assert_allclose(stages['trident.sam_weights0'][rows].numpy(),
                               expected['sam_weights'], rtol=0,
                               atol=FLOAT_ATOL)
    step = int(run.meta['feature_subsample'])
    np.testing.assert_allclose(dense[0].flatten(1).T[::step].numpy(),
                               expected['dense_features'], rtol=0,
                               atol=FLOAT_ATOL)
    step = int(run.meta['ori_logits_subsample'])
    np.testing.assert_allclose(sims[0, :, ::step, ::step].numpy(),
                               expected['ori_logits'], rtol=0,
                               atol=FLOAT_ATOL)
    pred = out[0].pred_sem_seg.data[0].numpy()
    assert pred.shape == expected['pred'].shape
    assert float((pred == expected['pred']).mean()) >= PRED_AGREEMENT


# ------------------------------------------- building blocks, by hand
def test_dbscan_min_samples_one_equals_hand_clusters():
    """Chains of distances <= eps join (inclusive); labels by first point."""
    from mmovss.models.backbones.corrclip_vit import dbscan_min_samples_one
    d = torch.full((5, 5), 1.0)
    d.fill_diagonal_(0.0)
    for i, j, v in [(0, 2, 0.2), (2, 4, 0.1), (1, 3, 0.25)]:
        d[i, j] = d[j, i] = v
    # 0-2 at exactly eps, 2-4 below: {0, 2, 4}; 1-3 above eps: alone
    assert dbscan_min_samples_one(d, 0.2).tolist() == [0, 1, 0, 2, 0]
    assert dbscan_min_samples_one(d, 0.3).tolist() == [0, 1, 0, 1, 0]


def test_scope_attention_equals_hand_mask():
    """Same region (> 0) or touching region 0 with S > mean(S)."""
    from mmovss.models.backbones.corrclip_vit import scope_attention
    feats = F.normalize(torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8],
                                      [0.0, 1.0]]), dim=1)
    groups = torch.tensor([0, 1, 1, 2])
    sim = feats @ feats.T
    # S = [[1, .8, .6, 0], [.8, 1, .96, .6], [.6, .96, 1, .8],
    #      [0, .6, .8, 1]], mean(S) = 0.72
    allowed = torch.tensor([[1, 1, 0, 0],   # row 0: region 0, S > 0.72
                            [1, 1, 1, 0],   # S[1, 0] = 0.8 > 0.72
                            [0, 1, 1, 0],   # S[2, 0] = 0.6 < 0.72
                            [0, 0, 0, 1]], dtype=torch.bool)
    assert float(sim.mean()) == pytest.approx(0.72, abs=1e-6)
    logits = (4 * sim).masked_fill(~allowed, float('-inf'))
    torch.testing.assert_close(scope_attention(feats, groups, 4.0),
                               logits.softmax(-1), rtol=0, atol=1e-6)


def test_merge_regions_joins_regions_with_close_mean_features():
    from mmovss.models.backbones.corrclip_vit import merge_regions
    groups = torch.tensor([[0, 1, 2], [3, 1, 2]])
    f = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.99, 0.14], [0.0, 1.0],
                      [1.0, 0.0], [0.99, 0.14]])
    feats = F.normalize(f, dim=1)
    merged = merge_regions(groups, feats, eps=0.2)
    # regions 1 and 2 have cosine 0.99 (distance 0.01 from the max 1),
    # region 3 is orthogonal to both; region 0 is never merged
    assert merged.tolist() == [[0, 1, 1], [2, 1, 1]]


def test_splice_windows_averages_overlaps():
    from mmovss.models.backbones.trident_vit import splice_windows
    windows = torch.stack([torch.full((1, 2, 2), 1.0),
                           torch.full((1, 2, 2), 3.0)])
    out = splice_windows(windows, [(0, 0, 2, 2), (0, 1, 2, 3)], (2, 3))
    assert out[0].tolist() == [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]


@pytest.mark.parametrize('method', ['corrclip', 'trident'])
def test_bf16_cast_runs_and_keeps_the_labels(method, monkeypatch):
    """``inference_dtype='bf16'`` with the towers cast once (SAM and DINO
    included) runs on the fixture's model and keeps its float32 labels (the
    tiny random CLIP's near ties allow 2 % to flip: ``TINY_AGREEMENT`` of
    tests/test_low_precision.py, whose CPU check is faked the same way so
    that a CPU with slow bf16 does not fall back to float32)."""
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=True, message=None, bf16_gflops=2.0, fp32_gflops=1.0))
    directory = CORRCLIP_DIR if method == 'corrclip' else TRIDENT_DIR
    json_path = CORRCLIP_JSON if method == 'corrclip' else TRIDENT_JSON
    reason = missing_reason(directory, json_path)
    if reason:
        pytest.skip(f'{method} parity: {reason}')
    run = (CorrCLIPRun if method == 'corrclip' else TridentRun)(directory, json_path)
    inputs, samples = run.data()
    model = run.model
    model.test_cfg.update(precision_mode='cast')

    def labels(dtype):
        model.test_cfg['inference_dtype'] = dtype
        with torch.no_grad():
            return model.predict(inputs, samples)[0].pred_sem_seg.data

    ref, out = labels('fp32'), labels('bf16')
    assert model.inference_precision['run'] == 'bf16'
    assert linear_dtypes(model.backbone) == {torch.bfloat16}
    assert float((out == ref).float().mean()) >= TINY_AGREEMENT
