"""Parity of ResCLIP and SC-CLIP with their published implementations.

Reads the fixture directory of ``tests/test_parity.py`` (``MMOVSS_PARITY_DIR``,
default ``../shared/parity/A``): the ``<method>.json``/``.npz`` runs whose
``reference_repo`` is ResCLIP's or SC-CLIP's (see the fixtures' README,
section "ResCLIP and SC-CLIP"). Our model is built from our config with
overrides taken from the JSON only (including the layer indices adapted to
the tiny model, ``tiny_model_adaptations``) and compared stage by stage: text
embeddings, the first window's dense features and the method's extra stage
arrays (ResCLIP: RCS attention, SFR patch labels and prior; SC-CLIP: anomaly
tokens and outlier scores), slide logits, final predictions.
"""
import json
import os

import numpy as np
import pytest
import test_parity as parity
import torch
import torch.nn.functional as F
from test_parity import (
    FLOAT_ATOL,
    PARITY_DIR,
    PRED_AGREEMENT,
)

import mmovss  # noqa: F401
from mmovss.models.backbones.tower_context import record_stages

CONFIGS = {
    'yvhangyang/ResCLIP': 'configs/resclip/resclip_vit-b16_pascal_context_60.py',
    'SuleBai/SC-CLIP': 'configs/scclip/scclip_vit-b16_voc21.py',
}


FIXTURES = parity.fixtures_of(lambda repo: repo in CONFIGS)
pytestmark = pytest.mark.skipif(
    not FIXTURES,
    reason=f'no ResCLIP / SC-CLIP parity fixtures in {PARITY_DIR!r} (set '
    f'MMOVSS_PARITY_DIR to a directory with resclip/scclip .json/.npz)')


def _adapted(meta: dict, key: str, official):
    """A layer index as used by the recorded run (tiny-model adaptation)."""
    adaptation = meta.get('tiny_model_adaptations', {}).get(key)
    return official if adaptation is None else adaptation['used']


def resclip_options(meta: dict) -> dict:
    ref = meta['resclip']
    if (ref['arch'], ref['attn_strategy']) != ('wo_resi', 'resclip'):
        pytest.skip(f'ResCLIP variant {ref["arch"]}/{ref["attn_strategy"]} '
                    f'has no mmovss mode.')
    return dict(
        gaussian_std=ref['gaussian_std'],
        rcs_layers=tuple(_adapted(meta, 'rcs_attention_map_indices',
                                  [5, 6, 7, 8])),
        rcs_weights=tuple(ref['attn_rcs_weights']),
        sfr_weights=tuple(ref['attn_sfr_weights']),
        temp_thd=ref['temp_thd'],
        delete_same_entity=ref['delete_same_entity'],
        use_rcs=bool(ref['use_rcs']),
        use_sfr=bool(ref['use_sfr']),
        sfr_pamr=dict(type='PAMR', num_iter=ref['sfr_pamr']['num_iter'],
                      dilations=tuple(ref['sfr_pamr']['dilations'])))


def scclip_options(meta: dict) -> dict:
    ref = meta['scclip']
    return dict(
        pre_adjust_idx=ref['pre_adjust_idx'],
        post_adjust_idx=ref['post_adjust_idx'],
        multi_start_idx=ref['multi_start_idx'],
        multi_end_idx=ref['multi_end_idx'],
        res_cls=ref['res_cls'],
        beta=ref['beta'],
        lof_neighbors=ref['lof_n_neighbors'],
        lof_contamination=ref['lof_contamination'])


MODE_OPTIONS = {
    'yvhangyang/ResCLIP': resclip_options,
    'SuleBai/SC-CLIP': scclip_options,
}


class Run(parity.Run):
    """:class:`test_parity.Run` with the method's mode options."""

    def __init__(self, json_path: str):
        with open(json_path) as f:
            repo = json.load(f)['reference_repo']
        super().__init__(json_path, configs=CONFIGS, extra_options=lambda meta: {
            'model.backbone.last_block_options': MODE_OPTIONS[repo](meta)})

    def data(self):
        """The resized, normalised image (1, 3, H, W) and its samples."""
        _, inputs, data_samples = super().data()
        return inputs, data_samples


@pytest.fixture(scope='module', params=FIXTURES,
                ids=[os.path.basename(p)[:-5] for p in FIXTURES])
def run(request):
    with torch.no_grad():
        yield Run(request.param)


def test_text_embeddings(run):
    with torch.no_grad():
        embeds = run.model.class_embeddings()
    assert list(embeds.vocabulary.names) == run.meta['query_words']
    assert embeds.name_to_class.tolist() == \
        run.expected['query_idx'].tolist()
    np.testing.assert_allclose(embeds.embeds.numpy(),
                               run.expected['text_embeddings'], rtol=0,
                               atol=FLOAT_ATOL)


def _check_resclip_stages(stages: dict, expected):
    np.testing.assert_allclose(stages['resclip.rcs_attention'][0].numpy(),
                               expected['crop0_attn_rcs'], rtol=0,
                               atol=FLOAT_ATOL)
    np.testing.assert_array_equal(stages['resclip.sfr_labels'][0].numpy(),
                                  expected['crop0_sfr_patch_labels'])
    np.testing.assert_allclose(stages['resclip.sfr_prior'][0].numpy(),
                               expected['crop0_attn_sfr'], rtol=0,
                               atol=FLOAT_ATOL)


def _check_scclip_stages(stages: dict, expected):
    anomalies = torch.nonzero(stages['scclip.anomalies'][0]).flatten()
    np.testing.assert_array_equal(anomalies.numpy(),
                                  expected['crop0_anomaly_token_idx'])
    np.testing.assert_allclose(stages['scclip.lof_scores'][0].numpy(),
                               expected['crop0_lof_scores'], rtol=0,
                               atol=FLOAT_ATOL)


# every stage array of a fixture -> the check that reads it
STAGE_CHECKS = {
    'crop0_attn_rcs': _check_resclip_stages,
    'crop0_sfr_patch_labels': _check_resclip_stages,
    'crop0_attn_sfr': _check_resclip_stages,
    'crop0_anomaly_token_idx': _check_scclip_stages,
    'crop0_lof_scores': _check_scclip_stages,
}
COMMON = {'text_embeddings', 'query_idx', 'crop0_patch_features',
          'crop0_patch_features_unnormalized', 'slide_logits', 'pred'}


def test_every_stored_array_is_checked(run):
    unknown = set(run.expected.files) - COMMON - set(STAGE_CHECKS)
    assert not unknown, f'fixture arrays without a check: {sorted(unknown)}'


def test_first_window_features_and_stages(run):
    inputs, _ = run.data()
    assert tuple(inputs.shape[2:]) == tuple(run.meta['resized_hw'])
    y1, y2, x1, x2 = run.meta['slide']['crop_windows_y1y2x1x2'][0]
    with torch.no_grad(), record_stages() as stages:
        dense = run.model.backbone(inputs[:, :, y1:y2, x1:x2])[-1]
    feats = dense[0].flatten(1).T
    np.testing.assert_allclose(
        feats.numpy(), run.expected['crop0_patch_features_unnormalized'],
        rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_allclose(
        F.normalize(feats, dim=-1).numpy(),
        run.expected['crop0_patch_features'], rtol=0, atol=FLOAT_ATOL)
    checks = {STAGE_CHECKS[k] for k in run.expected.files
              if k in STAGE_CHECKS}
    assert checks, 'the fixture stores no stage array of its method'
    for check in checks:
        check(stages, run.expected)


def test_slide_logits(run):
    inputs, samples = run.data()
    assert [list(b) for b in run.model.crop_boxes(
        inputs.shape[2:], run.model.test_cfg.crop_size,
        run.model.test_cfg.stride)] == \
        run.meta['slide']['crop_windows_y1y2x1x2']
    step = int(run.meta['slide_logits_subsample'])
    with torch.no_grad():
        sims = run.model.slide_inference(inputs,
                                         [s.metainfo for s in samples])
    np.testing.assert_allclose(sims[0, :, ::step, ::step].numpy(),
                               run.expected['slide_logits'], rtol=0,
                               atol=FLOAT_ATOL)


def test_predictions(run):
    inputs, samples = run.data()
    with torch.no_grad():
        out = run.model.predict(inputs, samples)
    pred = out[0].pred_sem_seg.data[0].numpy()
    expected = run.expected['pred']
    assert pred.shape == expected.shape
    assert float((pred == expected).mean()) >= PRED_AGREEMENT
