"""Parity of the training-free methods with their published implementations.

Reads a fixture directory (``MMOVSS_PARITY_DIR``, default
``../shared/parity/A`` next to the repository) made by running the published
SCLIP / NACLIP / ClearCLIP codes on a tiny random CLIP (see its README): one
``<method>.json`` (every parameter) + ``<method>.npz`` (expected arrays) per
run, the weights in OpenAI's state-dict format, the image and the class
files. For each run, our model is built from one of our configs with
``--cfg-options``-style overrides taken from the JSON only, and compared
stage by stage: text embeddings, dense features of the first window, slide
logits, final predictions (and with PAMR where recorded).
"""
import glob
import json
import os
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmovss  # noqa: F401
from mmovss.testing.clip import openai_model_cfg

from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY_DIR = os.environ.get(
    'MMOVSS_PARITY_DIR', os.path.join(REPO, '..', 'shared', 'parity', 'A'))
# Methods whose fixtures another file checks (with their extra stage arrays).
CHECKED_ELSEWHERE = {'yvhangyang/ResCLIP': 'tests/test_parity_resclip_scclip.py',
                     'SuleBai/SC-CLIP': 'tests/test_parity_resclip_scclip.py'}


def fixtures_of(keep_repo) -> list:
    """The fixture JSONs of ``PARITY_DIR`` whose ``reference_repo`` passes ``keep_repo``."""
    paths = []
    for path in sorted(glob.glob(os.path.join(PARITY_DIR, '*.json'))):
        with open(path) as f:
            if keep_repo(json.load(f).get('reference_repo')):
                paths.append(path)
    return paths


FIXTURES = fixtures_of(lambda repo: repo not in CHECKED_ELSEWHERE)

pytestmark = pytest.mark.skipif(
    not FIXTURES,
    reason=f'no parity fixtures in {PARITY_DIR!r} (set MMOVSS_PARITY_DIR to '
    f'a directory of <method>.json/.npz files)')

FLOAT_ATOL = 1e-4
PRED_AGREEMENT = 0.999

# (reference repository, model type or attention) -> our config and mode
CONFIGS = {
    'wangf3014/SCLIP': 'configs/sclip/sclip_vit-b16_voc21.py',
    'sinahmr/NACLIP': 'configs/naclip/naclip_vit-b16_pascal_context_60.py',
    'mc-lan/ClearCLIP': 'configs/clearclip/clearclip_vit-b16_pascal_context_60.py',
}
PAMR_CONFIGS = {
    'sinahmr/NACLIP':
    'configs/naclip/naclip-pamr_vit-b16_pascal_context_60.py',
}
CLEARCLIP_MODES = {  # (model_type, ignore_residual) -> last_block_mode
    ('ClearCLIP', True): 'clearclip',
    ('MaskCLIP', False): 'maskclip',
    ('MaskCLIP', True): 'maskclip_noresidual',
    ('vanilla', False): 'vanilla',
    ('vanilla', True): 'vanilla_noresidual',
}


def cfg_options(meta: dict, model_cfg: dict, pamr: bool = False) -> dict:
    """``--cfg-options`` overrides reproducing a recorded run."""
    ref = meta['model_cfg_used']
    weights = os.path.join(PARITY_DIR, meta['weights_file'])
    clip = dict(model_cfg=model_cfg, pretrained=weights)
    options = {
        'model.vocabulary': os.path.join(PARITY_DIR, meta['class_file']),
        'model.data_preprocessor.mean': meta['normalization']['mean'],
        'model.data_preprocessor.std': meta['normalization']['std'],
        'model.text_encoder.templates': meta['templates'],
        'model.text_encoder.cache_dir': None,
        'model.decode_head.in_channels': model_cfg['embed_dim'],
        'model.decode_head.logit_scale': meta['logit_scale'],
        'model.decode_head.prob_thd': meta['prob_thd'],
        'model.decode_head.area_thd': meta['area_thd'],
        'model.decode_head.background_index': 0,  # line 0 = background
        'model.test_cfg': dict(
            mode='slide',
            crop_size=(meta['slide']['crop'], ) * 2,
            stride=(meta['slide']['stride'], ) * 2,
            crop_batch_size=4),
    }
    for part in ('backbone', 'text_encoder'):
        for key, value in clip.items():
            options[f'model.{part}.{key}'] = value
    repo = meta['reference_repo']
    if repo == 'sinahmr/NACLIP':
        if (ref.get('arch'), ref.get('attn_strategy')) != ('reduced', 'naclip'):
            pytest.skip(f'NACLIP variant {ref} has no mmovss mode.')
        options['model.backbone.last_block_options'] = dict(
            gaussian_std=ref['gaussian_std'])
    elif repo == 'mc-lan/ClearCLIP':
        key = (ref['model_type'], ref['ignore_residual'])
        if key not in CLEARCLIP_MODES:
            pytest.skip(f'ClearCLIP-code variant {key} has no mmovss mode.')
        options['model.backbone.last_block_mode'] = CLEARCLIP_MODES[key]
    if pamr:
        options['model.decode_head.pamr.num_iter'] = meta['pamr']['num_iter']
        options['model.decode_head.pamr.dilations'] = tuple(
            meta['pamr']['dilations'])
    return options


def short_side(meta: dict) -> tuple:
    match = re.search(r'scale=\((\d+), (\d+)\)', meta['resize']['pipeline'])
    assert match, meta['resize']['pipeline']
    return int(match.group(1)), int(match.group(2))


class Run:
    """One recorded run: its JSON, arrays, our config and model."""

    def __init__(self, json_path: str, pamr: bool = False, configs=None,
                 extra_options=None):
        """``configs`` (repo -> config path) and ``extra_options`` (meta ->
        cfg options) let other parity files reuse this class."""
        with open(json_path) as f:
            self.meta = json.load(f)
        self.expected = np.load(json_path[:-len('.json')] + '.npz')
        repo = self.meta['reference_repo']
        configs = configs or (PAMR_CONFIGS if pamr else CONFIGS)
        if repo not in configs:
            pytest.skip(f'No mmovss config for {repo}' +
                        (' with PAMR.' if pamr else '.'))
        state_dict = torch.load(
            os.path.join(PARITY_DIR, self.meta['weights_file']),
            map_location='cpu', weights_only=True)
        self.cfg = Config.fromfile(os.path.join(REPO, configs[repo]))
        options = cfg_options(self.meta, openai_model_cfg(state_dict), pamr)
        if extra_options is not None:
            options.update(extra_options(self.meta))
        self.cfg.merge_from_dict(options)
        init_default_scope('mmseg')
        self.model = MODELS.build(self.cfg.model).eval()

    def data(self):
        """The image through the config's test pipeline + preprocessor."""
        pipeline = [dict(t) for t in self.cfg.test_pipeline
                    if 'Annotation' not in t['type']]
        for t in pipeline:
            if t['type'] == 'Resize':
                t['scale'] = short_side(self.meta)
        sample = Compose(pipeline)(
            dict(img_path=os.path.join(PARITY_DIR, self.meta['image_file'])))
        batch = self.model.data_preprocessor(
            dict(inputs=[sample['inputs']],
                 data_samples=[sample['data_samples']]), False)
        return sample, batch['inputs'], batch['data_samples']


@pytest.fixture(scope='module', params=FIXTURES,
                ids=[os.path.basename(p)[:-5] for p in FIXTURES])
def run(request):
    with torch.no_grad():
        yield Run(request.param)


def test_text_embeddings(run):
    meta, expected = run.meta, run.expected
    with torch.no_grad():
        embeds = run.model.class_embeddings()
    assert list(embeds.vocabulary.names) == meta['query_words']
    assert embeds.name_to_class.tolist() == expected['query_idx'].tolist()
    np.testing.assert_allclose(embeds.embeds.numpy(),
                               expected['text_embeddings'], rtol=0,
                               atol=FLOAT_ATOL)


def test_resized_input_and_windows(run):
    sample, inputs, _ = run.data()
    meta = run.meta
    key = f'resized_rgb_uint8_short{short_side(run.meta)[1]}'
    resized = sample['inputs'].flip(0).permute(1, 2, 0).numpy()  # BGR->RGB
    np.testing.assert_array_equal(resized, np.load(
        os.path.join(PARITY_DIR, 'inputs.npz'))[key])
    assert tuple(inputs.shape[2:]) == tuple(meta['resized_hw'])
    boxes = run.model.crop_boxes(inputs.shape[2:],
                                 run.model.test_cfg.crop_size,
                                 run.model.test_cfg.stride)
    assert [list(b) for b in boxes] == meta['slide']['crop_windows_y1y2x1x2']


def test_dense_features_of_first_window(run):
    _, inputs, _ = run.data()
    y1, y2, x1, x2 = run.meta['slide']['crop_windows_y1y2x1x2'][0]
    with torch.no_grad():
        dense = run.model.backbone(inputs[:, :, y1:y2, x1:x2])[-1]
    feats = dense[0].flatten(1).T
    np.testing.assert_allclose(
        feats.numpy(), run.expected['crop0_patch_features_unnormalized'],
        rtol=0, atol=FLOAT_ATOL)
    np.testing.assert_allclose(
        F.normalize(feats, dim=-1).numpy(),
        run.expected['crop0_patch_features'], rtol=0, atol=FLOAT_ATOL)


def test_slide_logits(run):
    if 'slide_logits' not in run.expected:
        pytest.skip(f"{run.meta['method']} stores no slide logits.")
    _, inputs, samples = run.data()
    step = int(run.meta['slide_logits_subsample'])
    with torch.no_grad():
        sims = run.model.slide_inference(inputs,
                                         [s.metainfo for s in samples])
    np.testing.assert_allclose(sims[0, :, ::step, ::step].numpy(),
                               run.expected['slide_logits'], rtol=0,
                               atol=FLOAT_ATOL)


def _agreement(run: Run, key: str) -> float:
    _, inputs, samples = run.data()
    with torch.no_grad():
        out = run.model.predict(inputs, samples)
    pred = out[0].pred_sem_seg.data[0].numpy()
    expected = run.expected[key]
    assert pred.shape == expected.shape
    return float((pred == expected).mean())


def test_predictions(run):
    assert _agreement(run, 'pred') >= PRED_AGREEMENT


@pytest.mark.parametrize('json_path', [
    p for p in FIXTURES
    if json.load(open(p)).get('pamr')
], ids=lambda p: os.path.basename(p)[:-5])
def test_predictions_with_pamr(json_path):
    with torch.no_grad():
        run = Run(json_path, pamr=True)
        assert _agreement(run, 'pred_pamr') >= PRED_AGREEMENT
