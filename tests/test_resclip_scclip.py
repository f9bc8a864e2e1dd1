"""ResCLIP and SC-CLIP modes on tiny random models (no weights, no fixtures).

The parity with the published codes is in ``test_parity_resclip_scclip.py``;
here each piece is checked against a direct (looped) computation of its
definition, and the modes against the machinery around them (context
requests, text feedback, batched windows, configs and protocols).
"""
import copy
import glob
import math
import os

import pytest
import torch

from mmovss.models.backbones.resclip_mode import (
    resclip_attention,
    sfr_patch_labels,
    sfr_prior,
    straight_paths_valid,
)
from mmovss.models.backbones.scclip_mode import aggregate, fix_anomalies, local_outlier_factor
from mmovss.models.backbones.tower_context import TextFeedback, record_stages
from mmovss.protocols import apply_benchmark, protocol_benchmarks
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.vocab import Vocabulary

from mmengine.config import Config
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG = tiny_clip_cfg('vit', vision_cfg=dict(layers=3))  # 2 ordinary blocks
RESCLIP = dict(rcs_layers=(0, 1), temp_thd=0.05,
               sfr_pamr=dict(type='PAMR', num_iter=2, dilations=(1, 2)))
SCCLIP = dict(pre_adjust_idx=1, post_adjust_idx=0, multi_start_idx=0,
              multi_end_idx=2, lof_neighbors=5)


# ------------------------------------------------------------ ResCLIP
def test_straight_paths_match_a_loop_over_pairs():
    torch.manual_seed(0)
    labels = torch.randint(0, 3, (4, 5))
    valid, steps = straight_paths_valid(labels, max_elements=50)  # chunks
    h, w = labels.shape
    big = max(h, w) - 1
    t = torch.linspace(0, 1, big + 1)
    for i in range(h * w):
        for j in range(h * w):
            ri, ci, rj, cj = i // w, i % w, j // w, j % w
            s = max(abs(ri - rj), abs(ci - cj))
            ok = True
            for k in range(s + 1):
                r = torch.round(ri * (1 - t[k]) + rj * t[k]).long()
                c = torch.round(ci * (1 - t[k]) + cj * t[k]).long()
                ok &= bool(labels[r, c] == labels[ri, ci])
            assert int(steps[i, j]) == s and bool(valid[i, j]) == ok


def test_sfr_prior_matches_its_definition():
    torch.manual_seed(1)
    labels = torch.randint(0, 3, (4, 4))
    std = 1.5
    prior = sfr_prior(labels, std)
    n = labels.numel()
    valid, steps = straight_paths_valid(labels)
    flat = labels.flatten()
    size = int(6 * std + 1) | 1  # 10 -> 11 taps (odd), < n = 16
    gauss = [math.exp(-(x - size // 2)**2 / (2 * std**2)) for x in range(size)]
    gauss = [g / sum(gauss) for g in gauss]
    expected = torch.zeros(n + 1, n + 1)
    for i in range(n):
        m = [float(flat[i] == flat[j]) *
             (1.0 if valid[i, j] else math.exp(-float(steps[i, j]) / 3))
             for j in range(n)]
        row = [max(0.0, sum(gauss[x] * m[j + x - size // 2]
                            for x in range(size)
                            if 0 <= j + x - size // 2 < n))
               for j in range(n)]
        expected[i + 1, 1:] = torch.tensor(row) / (sum(row) + 1e-8)
    torch.testing.assert_close(prior, expected, atol=1e-6, rtol=0)
    # without the path test, same labels are all 1 before smoothing
    plain = sfr_prior(torch.zeros(4, 4, dtype=torch.long), std, False)
    assert torch.equal(plain, sfr_prior(torch.zeros(4, 4, dtype=torch.long),
                                        std, True))


def test_sfr_patch_labels_threshold_and_majority():
    images = torch.zeros(1, 3, 4, 4)  # a 2x2 grid of 2x2 patches
    # name 1 on the left column of patches, name 2 on the right: the
    # bilinear 4x4 map keeps pixel columns 0-1 for 1 and 2-3 for 2
    sims = torch.zeros(1, 3, 2, 2)
    sims[0, 1, :, 0] = sims[0, 2, :, 1] = 1.0
    labels = sfr_patch_labels(sims, images, 40.0, 0.3, (2, 2), None)
    assert labels.tolist() == [[[1, 2], [1, 2]]]
    # names 1 and 2 tie everywhere (p = 0.5): below temp_thd -> name 0,
    # above it the first of the tied names
    tie = torch.zeros(1, 3, 2, 2)
    tie[0, 1:] = 1.0
    assert sfr_patch_labels(tie, images, 40.0, 0.6, (2, 2),
                            None).eq(0).all()
    assert sfr_patch_labels(tie, images, 40.0, 0.3, (2, 2),
                            None).eq(1).all()
    # majority per patch (ties: smallest name); patch size 2 on a 1x1 grid
    pixel = torch.zeros(1, 3, 2, 2)
    pixel[0, 2, 0, :] = pixel[0, 1, 1, 0] = pixel[0, 0, 1, 1] = 1.0
    probs = sfr_patch_labels(pixel, images[..., :2, :2], 40.0, 0.3, (1, 1),
                             None)
    assert probs.tolist() == [[[2, 2], [1, 0]]]


def test_resclip_attention_rows_sum_to_tau_and_bases():
    torch.manual_seed(2)
    q, k = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    ones = torch.ones(2, 2, 5, 1)
    omega = torch.rand(5, 5)
    rcs = torch.softmax(torch.randn(2, 2, 5, 5), dim=-1)
    prior = torch.rand(2, 5, 5)
    for base, rows in (('naclip', 2.0), ('clearclip', 2.0), ('vanilla', 2.0),
                       ('sclip', 2.0 * (0.7 * 2 + 0.3))):
        out = resclip_attention(q, k, ones, omega, rcs, (2.0, 0.3), prior,
                                (1.8, 0.7), base)
        torch.testing.assert_close(out, torch.full_like(out, rows))
    # without RCS and prior: the baselines' attentions
    v = torch.randn(2, 2, 5, 4)

    def run(base):
        return resclip_attention(q, k, v, omega, None, (2.0, 0.3), None,
                                 (1.8, 0.7), base)

    def sm(a, b, bias=0):
        return torch.softmax(a @ b.transpose(-1, -2) / 2 + bias, -1)

    torch.testing.assert_close(run('naclip'), sm(k, k, omega) @ v)
    torch.testing.assert_close(run('clearclip'), sm(q, q) @ v)
    torch.testing.assert_close(run('vanilla'), sm(q, k) @ v)
    torch.testing.assert_close(run('sclip'), (sm(q, q) + sm(k, k)) @ v)
    # the SFR prior enters the logits: tau_s ((1 - lambda_s) X + lambda_s P)
    x = k @ k.transpose(-1, -2) / 2
    mixed = torch.softmax(1.8 * (0.3 * x + 0.7 * prior[:, None]) + omega, -1)
    torch.testing.assert_close(
        resclip_attention(q, k, v, omega, None, (2.0, 0.3), prior,
                          (1.8, 0.7)), mixed @ v)
    with pytest.raises(ValueError, match='base'):
        run('maskclip')


# ------------------------------------------------------------ SC-CLIP
def test_local_outlier_factor_matches_its_definition():
    torch.manual_seed(3)
    z = torch.randn(20, 3)
    z[7] += 6.0  # a planted outlier
    anomalies, scores = local_outlier_factor(z, n_neighbors=4,
                                             contamination=0.05)
    d = torch.cdist(z.double(), z.double())**2
    expected = []
    lrd = {}
    order = {}
    for i in range(20):
        order[i] = torch.argsort(d[i])[1:5]  # drop self
        lrd[i] = 4 / float(d[i, order[i][-1]])
    for i in range(20):
        expected.append(sum(lrd[int(j)] for j in order[i]) / 4 / lrd[i])
    torch.testing.assert_close(scores.double(),
                               torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-4, atol=0)
    assert anomalies.tolist() == [i == 7 for i in range(20)]


def test_fix_anomalies_uses_normal_neighbours_only():
    torch.manual_seed(4)
    h, w = 3, 4
    x = torch.randn(1, h * w, 2)
    bad = torch.zeros(1, h * w, dtype=torch.bool)
    bad[0, [0, 1, 5]] = True
    fixed = fix_anomalies(x, bad, (h, w))
    for i in range(h * w):
        r, c = divmod(i, w)
        if not bad[0, i]:
            assert torch.equal(fixed[0, i], x[0, i])
            continue
        nb = [rr * w + cc for rr in range(r - 1, r + 2)
              for cc in range(c - 1, c + 2)
              if (rr, cc) != (r, c) and 0 <= rr < h and 0 <= cc < w
              and not bad[0, rr * w + cc]]
        torch.testing.assert_close(fixed[0, i], x[0, nb].mean(0))
    # an anomaly surrounded by anomalies is kept
    all_bad = torch.ones(1, h * w, dtype=torch.bool)
    assert torch.equal(fix_anomalies(x, all_bad, (h, w)), x)


def test_aggregate_normalises_rows():
    corr = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]])
    x = torch.tensor([[[1.0], [3.0]]])
    torch.testing.assert_close(aggregate(x, corr),
                               torch.tensor([[[2 / (2 + 1e-6)],
                                              [4 / (2 + 1e-6)]]]))


# ------------------------------------------------------ on the tower
def segmentor(mode, options, vocabulary=('sky, road', 'car', 'tree'),
              crop_batch_size=8):
    torch.manual_seed(0)
    cfg = dict(
        type='TrainingFreeSegmentor',
        vocabulary=list(vocabulary),
        backbone=dict(type='TrainingFreeCLIPViT', model_cfg=CFG,
                      last_block_mode=mode, last_block_options=options),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG,
                          templates=['a photo of a {}.']),
        decode_head=dict(type='TrainingFreeHead', in_channels=32,
                         prob_thd=0.1, background_index=0),
        test_cfg=dict(mode='slide', crop_size=(32, 32), stride=(16, 16),
                      crop_batch_size=crop_batch_size))
    return MODELS.build(cfg).eval()


@pytest.mark.parametrize('mode,options', [('resclip', RESCLIP),
                                          ('scclip', SCCLIP)])
def test_modes_run_batched_like_one_window_at_a_time(mode, options):
    torch.manual_seed(5)
    x = torch.randn(1, 3, 48, 64)
    sample = SegDataSample(metainfo=dict(ori_shape=(50, 70),
                                         img_shape=(48, 64),
                                         pad_shape=(48, 64)))
    with torch.no_grad():
        batched = segmentor(mode, options)
        single = segmentor(mode, options, crop_batch_size=1)
        metas = [sample.metainfo]
        torch.testing.assert_close(batched.slide_inference(x, metas),
                                   single.slide_inference(x, metas))
        out = batched.predict(x, [copy.deepcopy(sample)])
        naclip = segmentor('naclip', {})
        dense = batched.backbone(x[:, :, :32, :32])[-1]
        assert (dense - naclip.backbone(x[:, :, :32, :32])[-1]).abs().max() \
            > 1e-3
    assert out[0].pred_sem_seg.data.shape == (1, 50, 70)


def test_resclip_feedback_follows_the_vocabulary():
    torch.manual_seed(6)
    x = torch.randn(1, 3, 32, 32)
    model = segmentor('resclip', RESCLIP)
    with torch.no_grad(), record_stages() as stages:
        first = model.backbone(x)[-1]
        labels = stages['resclip.sfr_labels'].clone()
        model.set_vocabulary(['tree', 'car', 'sky, road'])
        second = model.backbone(x)[-1]
    assert labels.shape == (1, 4, 4) and int(labels.max()) <= 3
    assert stages['resclip.rcs_attention'].shape == (1, 2, 17, 17)
    assert not torch.equal(labels, stages['resclip.sfr_labels']) or \
        not torch.allclose(first, second)
    # a copy of the segmentor feeds its own vocabulary to its own backbone
    clone = copy.deepcopy(model)
    assert clone.backbone.text_feedback.__self__ is clone
    # SFR off: no vocabulary needed, and the output changes
    plain = MODELS.build(dict(type='TrainingFreeCLIPViT', model_cfg=CFG,
                              last_block_mode='resclip',
                              last_block_options=dict(RESCLIP, use_sfr=False)))
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(x)[-1], first)


def test_context_modes_reject_bad_settings():
    build = dict(type='TrainingFreeCLIPViT', model_cfg=CFG)
    with pytest.raises(ValueError, match='rcs_layers'):
        MODELS.build(dict(build, last_block_mode='resclip'))  # ViT-B indices
    with pytest.raises(ValueError, match='multi_end_idx'):
        MODELS.build(dict(build, last_block_mode='scclip',
                          last_block_options=dict(SCCLIP, multi_end_idx=3)))
    with pytest.raises(ValueError, match='pre_adjust_idx'):
        MODELS.build(dict(build, last_block_mode='scclip'))
    with pytest.raises(TypeError, match='do not fit'):
        MODELS.build(dict(build, last_block_mode='scclip',
                          last_block_options=dict(SCCLIP, gaussian_std=1.)))
    alone = MODELS.build(dict(build, last_block_mode='resclip',
                              last_block_options=RESCLIP))
    with pytest.raises(RuntimeError, match='text_feedback'):
        alone(torch.randn(1, 3, 32, 32))
    alone.text_feedback = lambda: TextFeedback(torch.randn(3, 16), 40.0)
    with pytest.raises(ValueError, match='channels'):
        alone(torch.randn(1, 3, 32, 32))
    hot = MODELS.build(dict(build, last_block_mode='resclip',
                            last_block_options=dict(RESCLIP, temp_thd=2.0)))
    hot.text_feedback = lambda: TextFeedback(torch.randn(3, 32), 40.0)
    with pytest.raises(ValueError, match='temp_thd'):
        hot(torch.randn(1, 3, 32, 32))
    for bad, match in ((dict(base='sclip'), 'residual=True'),
                       (dict(base='maskclip'), 'base')):
        odd = MODELS.build(dict(build, last_block_mode='resclip',
                                last_block_options=dict(RESCLIP, **bad)))
        odd.text_feedback = hot.text_feedback
        with pytest.raises(ValueError, match=match):
            odd(torch.randn(1, 3, 32, 32))


# ------------------------------------------------------------ configs
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'configs', 'resclip', '*.py')) +
                 glob.glob(os.path.join(REPO, 'configs', 'scclip', '*.py')))


def test_one_config_and_readme_per_method():
    assert [os.path.basename(p) for p in CONFIGS] == [
        'resclip_vit-b16_pascal_context_60.py', 'scclip_vit-b16_voc21.py']
    for folder in ('resclip', 'scclip'):
        assert os.path.isfile(os.path.join(REPO, 'configs', folder,
                                           'README.md'))


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[os.path.basename(p) for p in CONFIGS])
def test_config_and_its_protocols_are_consistent(path):
    cfg = Config.fromfile(path)
    family = cfg.protocol
    keys = protocol_benchmarks(family)
    assert {'voc21', 'pascal_context_60', 'coco_object', 'voc20',
            'pascal_context_59', 'coco_stuff171', 'cityscapes',
            'ade20k_150'} <= set(keys)
    for key in keys:
        switched = apply_benchmark(Config.fromfile(path), key)
        model = switched.model
        assert model.backbone.last_block_mode == family
        MODELS.get(model.backbone.type)._check_options(
            family, model.backbone.last_block_options)
        head = model.decode_head
        if head.prob_thd > 0 or head.area_thd is not None:
            assert head.background_index == 0
        if model.vocabulary is not None and key != 'coco_object':
            vocab = Vocabulary.build(model.vocabulary)
            dataset = DATASETS.get(switched.test_dataloader.dataset.type)
            assert vocab.num_classes == len(dataset.METAINFO['classes'])
