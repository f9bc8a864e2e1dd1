"""The open-vocabulary IoU metric against mmseg's IoUMetric and by hand."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmovss.evaluation import OpenVocabIoUMetric, harmonic_mean

from mmseg.evaluation import IoUMetric  # noqa: I001 (after mmovss.compat)


def _sample(pred, gt, img_path='a/img.jpg', **extra):
    return dict(pred_sem_seg=dict(data=torch.as_tensor(pred)[None]),
                gt_sem_seg=dict(data=torch.as_tensor(gt)[None]),
                img_path=img_path, **extra)


def _evaluate(metric, classes, samples, **meta):
    metric.dataset_meta = dict(classes=classes, **meta)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)


def _random_samples(num_classes, seed, count=4, size=(24, 20)):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for index in range(count):
        gt = torch.randint(0, num_classes, size, generator=gen)
        gt[:3] = 255
        gt[gt % 7 == 3] = 3  # unequal class frequencies
        pred = torch.where(
            torch.rand(size, generator=gen) < 0.6, gt,
            torch.randint(0, num_classes, size, generator=gen))
        pred[pred == 149] = 0  # class 149 never predicted
        samples.append(_sample(pred, gt, f'x/{index}.jpg'))
    return samples


@pytest.mark.parametrize('iou_metrics', [['mIoU'], ['mIoU', 'mDice']])
def test_equals_mmseg_iou_metric_with_150_classes(iou_metrics):
    classes = [f'class {i}' for i in range(150)]
    samples = _random_samples(150, seed=0)
    theirs = _evaluate(IoUMetric(iou_metrics=iou_metrics), classes, samples)
    ours = _evaluate(OpenVocabIoUMetric(iou_metrics=iou_metrics), classes,
                     samples)
    assert set(theirs) <= set(ours)
    for key, value in theirs.items():
        assert ours[key] == value, key
    assert 0 < ours['mIoU'] < 100


# 2x4 image, 3 classes, last column ignored. Per class (inter / union):
# 0: 1/3, 1: 2/3, 2: 1/2.  Acc: 1/2, 2/2, 1/2.  aAcc: 4/6.
HAND_GT = [[0, 0, 1, 255], [1, 2, 2, 255]]
HAND_PRED = [[0, 1, 1, 2], [1, 0, 2, 0]]


def test_hand_computed_seen_unseen_and_harmonic_mean():
    metric = OpenVocabIoUMetric(unseen_classes=[1])
    result = _evaluate(metric, ['a', 'b', 'c'],
                       [_sample(HAND_PRED, HAND_GT)])
    assert result['aAcc'] == pytest.approx(66.67)
    assert result['mIoU'] == pytest.approx(50.0)
    assert result['mAcc'] == pytest.approx(66.67)
    # seen {0, 2}: (1/3 + 1/2) / 2 = 5/12; unseen {1}: 2/3
    assert result['mIoU_seen'] == pytest.approx(41.67)
    assert result['mIoU_unseen'] == pytest.approx(66.67)
    # 2 * 5/12 * 2/3 / (5/12 + 2/3) = 60/117
    assert result['hIoU'] == pytest.approx(51.28)


def test_unseen_classes_by_synonym_and_explicit_seen_set():
    classes = ['sofa, couch', 'wall, walls', 'tree, trees']
    result = _evaluate(
        OpenVocabIoUMetric(unseen_classes=['walls'], seen_classes=['tree']),
        classes, [_sample(HAND_PRED, HAND_GT)])
    assert result['mIoU_unseen'] == pytest.approx(66.67)
    assert result['mIoU_seen'] == pytest.approx(50.0)  # class 2 only
    with pytest.raises(ValueError, match="'chair' names no class"):
        _evaluate(OpenVocabIoUMetric(unseen_classes=['chair']), classes,
                  [_sample(HAND_PRED, HAND_GT)])
    with pytest.raises(ValueError, match='both seen and unseen'):
        _evaluate(OpenVocabIoUMetric(unseen_classes=[1], seen_classes=[0, 1]),
                  classes, [_sample(HAND_PRED, HAND_GT)])
    with pytest.raises(ValueError, match='non-empty list'):
        OpenVocabIoUMetric(unseen_classes='walls')


def test_mean_over_classes_present_in_the_ground_truth():
    # Class 3 is predicted once but absent from the ground truth; class 1
    # becomes perfect: IoU = [1/3, 1, 1/2, 0].
    pred = [[0, 3, 1, 2], [1, 0, 2, 0]]
    result = _evaluate(OpenVocabIoUMetric(report_gt_present=True),
                       ['a', 'b', 'c', 'd'], [_sample(pred, HAND_GT)])
    assert result['mIoU'] == pytest.approx(45.83)  # 11/24
    assert result['mIoU_gt_present'] == pytest.approx(61.11)  # 11/18


def test_harmonic_mean():
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert np.isnan(harmonic_mean(float('nan'), 0.3))


def test_wide_labels_use_the_dataset_ignore_index_and_16bit_out(tmp_path):
    classes = [f'c{i}' for i in range(847)]
    gt = torch.tensor([[846, 300, 65535], [0, 300, 65535]])
    pred = torch.tensor([[846, 300, 5], [0, 300, 5]])
    metric = OpenVocabIoUMetric(output_dir=str(tmp_path))
    result = _evaluate(metric, classes,
                       [_sample(pred, gt, 'x/ADE_val_1.jpg',
                                reduce_zero_label=True)],
                       ignore_index=65535)
    assert metric.ignore_index == 65535
    assert result['mIoU'] == 100.0  # class 5 only predicted on ignored pixels
    written = np.array(Image.open(tmp_path / 'ADE_val_1.png'))
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, pred.numpy() + 1)


def test_8bit_out_files_equal_mmseg(tmp_path):
    classes = [f'class {i}' for i in range(150)]
    samples = _random_samples(150, seed=1, count=1)
    for name, metric_cls in (('mmseg', IoUMetric),
                             ('ours', OpenVocabIoUMetric)):
        _evaluate(metric_cls(output_dir=str(tmp_path / name)), classes,
                  samples)
    theirs = Image.open(tmp_path / 'mmseg' / '0.png')
    ours = Image.open(tmp_path / 'ours' / '0.png')
    assert ours.mode == theirs.mode == 'L'
    np.testing.assert_array_equal(np.array(ours), np.array(theirs))
