"""LSeg's official multi-scale + flip evaluation (test_cfg mode 'multiscale_flip').

The reference is the official evaluator itself: the fixture
``tests/data/official_parity/lseg_multiscale/seed0`` holds the output of
``additional_utils/encoding_models.py: MultiEvalModule`` (github.com/isl-org/lang-seg,
what ``test_lseg.py`` runs) around a tiny deterministic network (``TinyNet`` below,
weights in the fixture), written by ``tools/parity/lseg_multiscale_reference.py``.
Tolerances: 1e-4 absolute on the summed logits (float32; six scales x two flips of
a conv net), >= 99.9 % equal labels.
"""
import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmovss.models.segmentors.multi_scale_flip import (
    MULTISCALE_FLIP_MODE,
    multiscale_flip_logits,
    official_windows,
)
from mmovss.testing.official_parity import list_fixtures, load_fixture

ATOL = 1e-4
FIXTURES = list_fixtures('lseg_multiscale')
LSEG_FIXTURES = list_fixtures('lseg')


class TinyNet(nn.Module):
    """The fixture's stand-in network (meta['stand_in']): conv5x5, tanh, stride-2
    conv3x3, 2x bilinear upsampling with align_corners=True."""

    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, num_classes, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.conv2(torch.tanh(self.conv1(x)))
        return F.interpolate(y, scale_factor=2, mode='bilinear', align_corners=True)


def _tiny_net(fixture):
    net = TinyNet(fixture.meta['num_classes'])
    net.load_state_dict(fixture.state_dict, strict=True)
    return net.eval()


def _pad_value(meta):
    # pad_image of the official evaluator: -mean / std (a black pixel)
    return -torch.tensor(meta['mean']) / torch.tensor(meta['std'])


def test_fixture_present():
    assert FIXTURES, 'tests/data/official_parity/lseg_multiscale/seed0 is missing'


@pytest.mark.parametrize('path', FIXTURES)
@torch.no_grad()
def test_function_equals_official_evaluator(path):
    fixture = load_fixture(path)
    meta = fixture.meta
    net = _tiny_net(fixture)
    crop = (meta['crop_size'], meta['crop_size'])
    stride = (meta['stride'], meta['stride'])
    for name in meta['images']:
        x = torch.from_numpy(fixture.inputs[f'normalized_{name}'])[None]
        ours = multiscale_flip_logits(net, x, meta['base_size'], meta['scales'], crop, stride,
                                      _pad_value(meta), flip=meta['flip'], batch_size=5)
        official = torch.from_numpy(fixture.stages[f'scores_{name}'])
        assert ours.shape == official.shape
        assert (ours - official).abs().max().item() <= ATOL, name
        labels = torch.from_numpy(fixture.stages[f'labels_{name}'])
        assert (ours.argmax(1) == labels).float().mean().item() >= 0.999


@functools.lru_cache(maxsize=1)
def _built_lseg_model():
    from mmovss.testing.official_parity.lseg import build_model
    return build_model(load_fixture(LSEG_FIXTURES[0]))


def _lseg_model():
    """The official LSeg config's model (MultiScaleFlipEncoderDecoder), tiny widths."""
    return copy.deepcopy(_built_lseg_model())


def _samples(shapes):
    from mmseg.structures import SegDataSample
    return [SegDataSample(metainfo=dict(img_shape=s, ori_shape=s)) for s in shapes]


@pytest.mark.skipif(not FIXTURES or not LSEG_FIXTURES, reason='fixtures missing')
@torch.no_grad()
def test_segmentor_mode_equals_official_evaluator():
    """The registered mode end to end: pixels (BGR, as mmcv loads them) through our data
    preprocessor (mean = std = 127.5, as LSegModule's 0.5 / 0.5), padded by it to 64 x 64
    (only the image's own region is evaluated), predict() with the stand-in network."""
    fixture = load_fixture(FIXTURES[0])
    meta = fixture.meta
    model = _lseg_model()
    assert type(model).__name__ == 'MultiScaleFlipEncoderDecoder'
    assert model.test_cfg.mode == MULTISCALE_FLIP_MODE
    net = _tiny_net(fixture)
    model.encode_decode = lambda crops, metas, class_embeds=None: net(crops)
    model.test_cfg.update(base_size=meta['base_size'], scales=meta['scales'],
                          crop_size=meta['crop_size'], stride=meta['stride'],
                          flip=meta['flip'], return_logits=True, crop_batch_size=7)
    names = list(meta['images'])
    # padded to 64 x 64 by the preprocessor (img_shape keeps the image's own size)
    model.data_preprocessor.test_cfg = dict(size=(64, 64))
    results = []
    for name in names:
        image = fixture.inputs[f'image_{name}']
        bgr = torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1)
        data = model.data_preprocessor(
            dict(inputs=[bgr], data_samples=_samples([image.shape[:2]])), False)
        assert tuple(data['inputs'].shape[2:]) == (64, 64)
        results += model.predict(data['inputs'], data['data_samples'])
    for name, result in zip(names, results):
        official = torch.from_numpy(fixture.stages[f'scores_{name}'])[0]
        ours = result.seg_logits.data
        assert ours.shape == official.shape
        assert (ours - official).abs().max().item() <= ATOL, name
        labels = torch.from_numpy(fixture.stages[f'labels_{name}'])
        assert (result.pred_sem_seg.data == labels).float().mean().item() >= 0.999


def _run(model, x, **test_cfg):
    model = copy.copy(model)
    model.test_cfg = copy.deepcopy(model.test_cfg)
    model.test_cfg.update(test_cfg)
    metas = [dict(img_shape=x.shape[2:], ori_shape=x.shape[2:], pad_shape=x.shape[2:],
                  padding_size=[0, 0, 0, 0])]
    return model.inference(x, metas)


@pytest.mark.skipif(not LSEG_FIXTURES, reason='LSeg fixture missing')
@torch.no_grad()
def test_one_scale_equals_whole_and_slide():
    """One scale whose size is the image's, no padding needed: the official loop is our
    'whole' inference (one crop) or our 'slide' inference (windows that tile exactly),
    on the tiny official LSeg model."""
    model = _lseg_model()
    # float32 logits: the released half-precision logits would turn the float rounding of
    # a batch of two crops (image + flip) vs one crop into fp16 steps (~1e-3)
    model.decode_head.logits_dtype = 'float32'
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 32, 32, generator=gen)
    whole = _run(model, x, mode='whole')
    ms = _run(model, x, mode=MULTISCALE_FLIP_MODE, base_size=32, scales=[1.0], flip=False,
              crop_size=32, stride=21)
    assert (ms - whole).abs().max().item() <= ATOL
    # flip: the network's logits plus the flipped logits of the flipped image
    flipped = _run(model, x.flip(3), mode='whole').flip(3)
    ms_flip = _run(model, x, mode=MULTISCALE_FLIP_MODE, base_size=32, scales=[1.0],
                   flip=True, crop_size=32, stride=21)
    assert (ms_flip - (whole + flipped)).abs().max().item() <= ATOL
    assert (ms_flip - whole).abs().max().item() > ATOL  # the flip is not a no-op here
    # portrait 64 x 32, windows 32 at stride 16: the official and mmseg grids coincide
    x = torch.randn(1, 3, 64, 32, generator=gen)
    slide = _run(model, x, mode='slide', crop_size=(32, 32), stride=(16, 16))
    ms = _run(model, x, mode=MULTISCALE_FLIP_MODE, base_size=64, scales=[1.0], flip=False,
              crop_size=32, stride=16)
    assert (ms - slide).abs().max().item() <= ATOL
    # two scales: the sum of the two one-scale results
    both = _run(model, x, mode=MULTISCALE_FLIP_MODE, base_size=64, scales=[1.0, 0.5],
                flip=False, crop_size=32, stride=16)
    half = _run(model, x, mode=MULTISCALE_FLIP_MODE, base_size=64, scales=[0.5],
                flip=False, crop_size=32, stride=16)
    assert (both - (ms + half)).abs().max().item() <= ATOL


def test_official_windows_clip_at_the_border():
    # ceil((ph - crop) / stride) + 1 windows per side, the last one clipped, not shifted
    boxes = official_windows((50, 32), (32, 32), (21, 21))
    assert boxes == [(0, 32, 0, 32), (21, 50, 0, 32)]


@pytest.mark.skipif(not LSEG_FIXTURES, reason='LSeg fixture missing')
def test_bad_settings_are_named():
    model = _lseg_model()
    x = torch.zeros(1, 3, 32, 32)
    model.test_cfg = copy.deepcopy(model.test_cfg)
    model.test_cfg.pop('base_size')
    with pytest.raises(ValueError, match='base_size'):
        _run(model, x)
    with pytest.raises(ValueError, match="'multiscale_flip'"):
        _run(model, x, mode='multi')
    with pytest.raises(ValueError, match='scales'):
        _run(model, x, mode=MULTISCALE_FLIP_MODE, base_size=32, scales=[], crop_size=32,
             stride=21)
