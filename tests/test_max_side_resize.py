"""The OVShapes models' test-time scale (``ResizeToMaxSide``,
``test_max_side`` in configs/_base_/datasets/ovshapes.py): a big photo is
shrunk before the tiny CLIP sees it; OVShapes' own 64 x 64 images are not
touched."""
import numpy as np
import pytest

from mmovss.datasets import ResizeToMaxSide
from mmovss.testing.tools import REPO_ROOT

from mmengine.config import Config

ZERO_SHOT = REPO_ROOT / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'


class _Stop(Exception):
    pass


def test_only_larger_images_are_shrunk():
    step = ResizeToMaxSide(max_side=512)
    small = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    results = step(dict(img=small.copy(), img_shape=(64, 64), ori_shape=(64, 64)))
    assert np.array_equal(results['img'], small) and 'scale_factor' not in results
    big = np.zeros((3000, 4000, 3), np.uint8)
    results = step(dict(img=big, img_shape=(3000, 4000), ori_shape=(3000, 4000),
                        gt_seg_map=np.ones((3000, 4000), np.uint8)))
    assert results['img'].shape == (384, 512, 3) and results['img_shape'] == (384, 512)
    assert results['ori_shape'] == (3000, 4000)  # predictions go back to the photo's size
    assert results['gt_seg_map'].shape == (384, 512)
    assert results['scale_factor'] == (512 / 4000, 384 / 3000)
    tall = step(dict(img=np.zeros((1000, 7, 3), np.uint8)))['img']
    assert tall.shape == (512, 4, 3)  # 7 * 0.512 = 3.58 -> 4: the aspect ratio kept
    for bad in (0, -1, 2.5, True, '512'):
        with pytest.raises(ValueError, match='max_side must be a whole number'):
            ResizeToMaxSide(max_side=bad)


def test_ovshapes_configs_set_a_test_scale():
    cfg = Config.fromfile(str(ZERO_SHOT))
    steps = cfg.test_dataloader.dataset.pipeline
    assert [s['type'] for s in steps[:2]] == ['LoadImageFromFile', 'ResizeToMaxSide']
    assert steps[1]['max_side'] == cfg.test_max_side == 512
    # before the label loader: labels keep the image's size, where they are scored
    assert [s['type'] for s in steps].index('LoadSegAnnotations') == 2


def test_a_big_photo_reaches_the_tiny_clip_at_the_test_scale():
    """Before: a 2000 x 1500 photo reached the tiny CLIP at full size
    (46,875 tokens of 8 x 8 px; 71 s on 2 cores, a 4000 x 3000 one 16 times
    as many attention pairs again)."""
    import warnings

    from mmovss.apis import OpenVocabInferencer
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        inferencer = OpenVocabInferencer('ovshapes-tiny', device='cpu')
    seen = []

    def record(module, args):
        seen.append(tuple(args[0].shape[-2:]))
        raise _Stop

    photo = np.random.default_rng(1).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    handle = inferencer.model.backbone.register_forward_pre_hook(record)
    try:
        with pytest.raises(_Stop):
            inferencer(photo, vocabulary=['sky', 'grass', 'sand'])
    finally:
        handle.remove()
    assert seen == [(384, 512)]
    # and the labels come back at the photo's size
    labels = inferencer(photo[:900, :1200], vocabulary=['sky', 'grass', 'sand'])
    assert labels['predictions']['sem_seg'].shape == (900, 1200)
