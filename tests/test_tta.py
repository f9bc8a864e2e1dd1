"""tools/test.py --tta: mmovss segmentors under test-time augmentation.

It failed for every mmovss segmentor (the dataset vocabulary never reached
the segmentor inside mmseg's TTA wrapper); mmseg's SegTTAModel takes a
softmax of class probabilities and scores; and averaging would silently drop
the training-free protocols' background threshold."""
import re

import pytest
import torch

from mmovss.models.segmentors import OpenVocabTTAModel
from mmovss.testing.tools import REPO_ROOT, load_tool, work_dir_log

from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

DENSE = REPO_ROOT / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
NACLIP = REPO_ROOT / 'configs/ovshapes/naclip_tiny-clip_ovshapes.py'


def _views(base, tmp_path, ratios, flips):
    path = tmp_path / f'tta_{len(ratios)}_{len(flips)}.py'
    path.write_text(
        f"_base_ = {str(base)!r}\n"
        "tta_pipeline = [dict(type='LoadImageFromFile'), dict(type='TestTimeAug', transforms=[\n"
        f"    [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in {ratios!r}],\n"
        f"    [dict(type='RandomFlip', prob=p, direction='horizontal') for p in {flips!r}],\n"
        "    [dict(type='LoadSegAnnotations')], [dict(type='PackSegInputs')]])]\n")
    return str(path)


def _miou(log):
    return float(re.findall(r'mIoU: ([\d.]+)', log)[-1])


@pytest.fixture(scope='module')
def world(make_ovshapes_world):
    return make_ovshapes_world(num_val=3, seed=7)  # stage oracles' world too


def _test(config, world, work_dir, *extra):
    main = load_tool('test.py').main
    main([config, '--work-dir', str(work_dir), *extra, '--cfg-options',
          f'test_dataloader.dataset.data_root={world}'])
    return work_dir_log(work_dir)


def test_one_view_equals_the_plain_test_and_more_views_run(world, tmp_path):
    plain = _miou(_test(str(DENSE), world, tmp_path / 'plain'))
    one = _test(_views(DENSE, tmp_path, (1.0,), (0.0,)), world, tmp_path / 'one', '--tta')
    assert _miou(one) == plain
    four = _test(_views(DENSE, tmp_path, (1.0, 1.5), (0.0, 1.0)), world, tmp_path / 'four',
                 '--tta')
    assert 0 < _miou(four) <= 100


def test_rules_beyond_the_argmax_are_refused(world, tmp_path):
    config = _views(NACLIP, tmp_path, (1.0,), (0.0,))
    with pytest.raises(ValueError, match=r'--tta cannot test TrainingFreeSegmentor: .*prob_thd'):
        _test(config, world, tmp_path / 'thd', '--tta', '--cfg-options',
              'model.decode_head.prob_thd=0.5', 'model.decode_head.background_index=0')


def test_without_tta_pipeline_the_error_shows_one():
    main = load_tool('test.py').main
    with pytest.raises(ValueError, match=r"--tta needs `tta_pipeline`.*TestTimeAug"):
        main([str(DENSE), '--tta'])


def _sample(scores):
    sample = SegDataSample()
    sample.set_data({'seg_logits': PixelData(data=torch.tensor(scores)[:, None, None])})
    return sample


def _tta(kind):
    class Segmentor(torch.nn.Module):
        def test_step(self, data):
            return data

    module = Segmentor()
    module.decode_head = torch.nn.Module()
    module.decode_head.seg_logits_kind = kind
    return OpenVocabTTAModel(module=module)


@pytest.mark.parametrize('kind', ['logits', 'probabilities', 'scores'])
def test_views_are_averaged_as_their_kind(kind):
    """Logits are averaged as probabilities (softmax, mmseg's rule), class
    probabilities and scores as they are; labels are the argmax (1, H, W)."""
    values = [[9.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    merged = _tta(kind).merge_preds([[_sample(v) for v in values]])[0]
    views = torch.tensor(values)
    expected = (views.softmax(dim=1) if kind == 'logits' else views).mean(dim=0)
    torch.testing.assert_close(merged.seg_logits.data[:, 0, 0], expected)
    assert merged.pred_sem_seg.data.shape == (1, 1, 1)
    assert int(merged.pred_sem_seg.data) == int(expected.argmax())


def test_one_class_is_every_pixel():
    """mmseg's SegTTAModel thresholds a sigmoid for one channel (pixels
    below 0.3 became class 1 of a one-class vocabulary); here every pixel
    is the one class, as in the segmentor's own labels."""
    merged = _tta('scores').merge_preds([[_sample([0.1]), _sample([0.2])]])[0]
    assert int(merged.pred_sem_seg.data) == 0


def test_unwrap_segmentor_reaches_the_segmentor_through_every_wrapper():
    # one helper for the vocabulary hook, check_tta_fits and tools/test.py;
    # before, each unwrapped on its own (tools/test.py one level only)
    from mmovss.engine import DistributedTestWrapper, unwrap_segmentor
    tta = _tta('scores')
    segmentor = tta.module
    assert unwrap_segmentor(DistributedTestWrapper(tta)) is segmentor
    assert unwrap_segmentor(tta) is segmentor
    assert unwrap_segmentor(DistributedTestWrapper(segmentor)) is segmentor
    assert unwrap_segmentor(segmentor) is segmentor
