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
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_parity import FLOAT_ATOL, PARITY_DIR, PRED_AGREEMENT, openai_model_cfg

import mmovss  # noqa: F401
from mmovss.models.backbones.tower_context import record_stages

from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = os.path.join(REPO, 'tests', 'data', 'parity_corrclip_trident')
CONFIG = 'configs/corrclip/corrclip_vit-b16-dino-b8_voc21.py'


def fixture_dir(method: str) -> str:
    """``MMOVSS_PARITY_DIR`` if it holds ``<method>.json``, else ours."""
    if os.path.isfile(os.path.join(PARITY_DIR, f'{method}.json')):
        return PARITY_DIR
    return COMMITTED


def shared_file(directory: str, name: str):
    """A fixture file from its directory or from the shared set A."""
    for root in (directory, PARITY_DIR):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    return None


CORRCLIP_DIR = fixture_dir('corrclip')
CORRCLIP_JSON = os.path.join(CORRCLIP_DIR, 'corrclip.json')


def _missing(directory: str, json_path: str):
    if not os.path.isfile(json_path):
        return f'no fixture {json_path}'
    with open(json_path) as f:
        meta = json.load(f)
    for key in ('weights_file', 'image_file'):
        if shared_file(directory, meta[key]) is None:
            return (f'{meta[key]} not in {directory} nor {PARITY_DIR} (set '
                    f'MMOVSS_PARITY_DIR to ../shared/parity/A)')
    return None


class CorrCLIPRun:
    """The recorded run, our model built from the JSON and its inputs."""

    def __init__(self, directory: str, json_path: str):
        with open(json_path) as f:
            self.meta = meta = json.load(f)
        self.expected = np.load(json_path[:-len('.json')] + '.npz')
        weights = shared_file(directory, meta['weights_file'])
        self.image = shared_file(directory, meta['image_file'])
        state_dict = torch.load(weights, map_location='cpu',
                                weights_only=True)
        model_cfg = openai_model_cfg(state_dict)
        ref, dino = meta['corrclip'], meta['dino_cfg']
        cfg = Config.fromfile(os.path.join(REPO, CONFIG))
        clip = dict(model_cfg=model_cfg, pretrained=weights)
        options = {
            'model.vocabulary': [', '.join(c) for c in meta['classes']],
            'model.data_preprocessor.mean': meta['normalization']['mean'],
            'model.data_preprocessor.std': meta['normalization']['std'],
            'model.text_encoder.templates': 'imagenet',
            'model.text_encoder.cache_dir': None,
            'model.backbone.vfm': dict(
                model_name='vit_small_patch8_224.dino',
                pretrained=os.path.join(directory,
                                        meta['dino_weights_file']),
                model_kwargs=dict(embed_dim=dino['embed_dim'],
                                  depth=dino['depth'],
                                  num_heads=dino['num_heads'],
                                  img_size=dino['img_size'][0])),
            'model.backbone.tau': ref['tau'],
            'model.backbone.merge_eps': ref['merge_eps'],
            'model.backbone.alpha': ref['alpha'],
            'model.backbone.beta': ref['beta'],
            'model.backbone.spatial_layers': ref['spatial_layers'],
            'model.decode_head.in_channels': model_cfg['embed_dim'],
            'model.decode_head.logit_scale': meta['logit_scale'],
            'model.decode_head.prob_thd': meta['prob_thd'],
            'model.decode_head.background_index': 0,
            'model.decode_head.mask_refinement.generator.mask_dir':
            os.path.join(directory, meta['mask_dir']),
            'model.test_cfg': dict(
                mode='slide', crop_size=(meta['slide']['crop'], ) * 2,
                stride=(meta['slide']['stride'], ) * 2, crop_batch_size=4),
        }
        for part in ('backbone', 'text_encoder'):
            for key, value in clip.items():
                options[f'model.{part}.{key}'] = value
        cfg.merge_from_dict(options)
        self.cfg = cfg
        init_default_scope('mmseg')
        self.model = MODELS.build(cfg.model).eval()

    def data(self):
        """The network input (1, 3, H, W) and its samples."""
        short = self.meta['resized_hw']
        pipeline = [dict(type='LoadImageFromFile'),
                    dict(type='Resize', scale=(2048, min(short)),
                         keep_ratio=True),
                    dict(type='PackSegInputs')]
        sample = Compose(pipeline)(dict(img_path=self.image))
        batch = self.model.data_preprocessor(
            dict(inputs=[sample['inputs']],
                 data_samples=[sample['data_samples']]), False)
        return batch['inputs'], batch['data_samples']


@pytest.fixture(scope='module')
def corrclip():
    reason = _missing(CORRCLIP_DIR, CORRCLIP_JSON)
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
TRIDENT_CONFIG = 'configs/trident/trident_vit-b16-dino-b16-sam-b_voc21.py'
TRIDENT_DIR = fixture_dir('trident')
TRIDENT_JSON = os.path.join(TRIDENT_DIR, 'trident.json')


class TridentRun(CorrCLIPRun):
    """The recorded Trident run and our model built from its JSON."""

    def __init__(self, directory: str, json_path: str):
        with open(json_path) as f:
            self.meta = meta = json.load(f)
        self.expected = np.load(json_path[:-len('.json')] + '.npz')
        weights = shared_file(directory, meta['weights_file'])
        self.image = shared_file(directory, meta['image_file'])
        state_dict = torch.load(weights, map_location='cpu',
                                weights_only=True)
        model_cfg = openai_model_cfg(state_dict)
        ref, dino, sam = meta['trident'], meta['dino_cfg'], meta['sam_cfg']
        cfg = Config.fromfile(os.path.join(REPO, TRIDENT_CONFIG))
        encoder_cfg = {k: v for k, v in sam.items() if k != 'norm_eps'}
        encoder_cfg['global_attn_indexes'] = tuple(
            encoder_cfg['global_attn_indexes'])
        options = {
            'model.vocabulary': [', '.join(c) for c in meta['classes']],
            'model.data_preprocessor.mean': meta['normalization']['mean'],
            'model.data_preprocessor.std': meta['normalization']['std'],
            'model.text_encoder.templates': 'imagenet',
            'model.text_encoder.cache_dir': None,
            'model.backbone.vfm': dict(
                model_name='vit_small_patch8_224.dino',
                pretrained=os.path.join(directory,
                                        meta['dino_weights_file']),
                model_kwargs=dict(embed_dim=dino['embed_dim'],
                                  depth=dino['depth'],
                                  num_heads=dino['num_heads'],
                                  img_size=dino['img_size'][0])),
            'model.backbone.sam': dict(
                model_type='vit_b',
                checkpoint=os.path.join(directory, meta['sam_weights_file']),
                encoder_cfg=encoder_cfg),
            'model.backbone.beta': ref['beta'],
            'model.backbone.gamma': ref['gamma'],
            'model.backbone.cos_fac': ref['cos_fac'],
            'model.backbone.refine_neg_cos': ref['refine_neg_cos'],
            'model.backbone.slide_crop': ref['slide_crop'],
            'model.backbone.slide_stride': ref['slide_stride'],
            'model.decode_head.in_channels': model_cfg['embed_dim'],
            'model.decode_head.logit_scale': meta['logit_scale'],
            'model.decode_head.prob_thd': meta['prob_thd'],
            'model.decode_head.background_index': 0,
        }
        for part in ('backbone', 'text_encoder'):
            options[f'model.{part}.model_cfg'] = model_cfg
            options[f'model.{part}.pretrained'] = weights
        cfg.merge_from_dict(options)
        self.cfg = cfg
        init_default_scope('mmseg')
        self.model = MODELS.build(cfg.model).eval()


@pytest.fixture(scope='module')
def trident():
    reason = _missing(TRIDENT_DIR, TRIDENT_JSON)
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
