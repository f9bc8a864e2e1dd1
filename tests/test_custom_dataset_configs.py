"""The configs that tools/dataset_converters/custom_dataset.py writes for a
method on a user's dataset: what the method config ties to its own dataset is
reset (vocabulary, seen-class list, background threshold, ignore index of the
loss, padding and metric), classes a split needs are checked, and an ignore
index that is a class is refused. Each test fails on the behaviour before
2026-12-07 (the first trains into IndexError: Target 65535 is out of bounds).
"""
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import mmovss  # noqa: F401
from mmovss.datasets.custom import ClassList
from mmovss.datasets.custom_config import check_ignore_index, custom_model_delta
from mmovss.evaluation.ov_iou_metric import resolve_class_specs
from mmovss.testing.tools import REPO_ROOT, load_tool

from mmengine.config import Config

DENSE_REFINE = REPO_ROOT / 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py'
CLASSES = 'sky\ngrass, lawn\nsand\nred square\nblue square | unseen\nyellow square\n'


def _dataset(root, labels, dtype=np.uint8, size=32):
    """MMSeg layout; ``labels[split]`` = list of (H, W) label arrays."""
    colours = np.random.default_rng(0).integers(0, 255, (70000, 3), dtype=np.uint8)
    for split, maps in labels.items():
        for i, label in enumerate(maps):
            for folder in ('img_dir', 'ann_dir'):
                (root / folder / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(colours[label.astype(np.int64)]).save(
                root / 'img_dir' / split / f'{i}.png')
            Image.fromarray(label.astype(dtype)).save(root / 'ann_dir' / split / f'{i}.png')
    (root / 'classes.txt').write_text(CLASSES)


def _label(values, size=32, unlabelled=None):
    label = np.zeros((size, size), np.int64)
    for k, v in enumerate(values):
        label[:, k * size // len(values):(k + 1) * size // len(values)] = v
    if unlabelled is not None:
        label[:4] = unlabelled
    return label


def _convert(capsys, root, *args):
    code = load_tool('dataset_converters/custom_dataset.py').main(
        [str(root), '--classes', str(root / 'classes.txt'), *map(str, args)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_ignore_index_65535_reaches_loss_padding_and_metric(tmp_path, capsys):
    """16-bit labels with 65535 as unlabelled: the written config trains and
    evaluates (before: the loss kept mmseg's 255 and the first step failed)."""
    root = tmp_path / 'data'
    train = [_label([0, 1, 2, 3, 5], unlabelled=65535), _label([1, 3, 0, 5], unlabelled=65535)]
    val = [_label([0, 4, 1, 3], unlabelled=65535), _label([4, 2, 5, 1])]
    _dataset(root, dict(train=train, val=val), np.uint16)
    configs = tmp_path / 'configs'
    code, log = _convert(capsys, root, '--ignore-index', '65535', '--method', DENSE_REFINE,
                         '--out-dir', configs)
    assert code == 0, log
    config = configs / 'data_dense-refine_tiny-clip_1k_ovshapes-seen.py'
    cfg = Config.fromfile(str(config))
    assert cfg.model.decode_head.ignore_index == 65535
    assert cfg.model.data_preprocessor.seg_pad_val == 65535
    assert cfg.test_evaluator.ignore_index == 65535
    assert cfg.train_dataloader.dataset.ignore_index == 65535
    assert Config.fromfile(str(configs / 'data.py')).test_evaluator.ignore_index == 65535
    proc = subprocess.run(
        [sys.executable, 'tools/train.py', str(config), '--work-dir', str(tmp_path / 'work'),
         '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
         'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2'],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert re.search(r'mIoU_unseen: [\d.]+', log), log[-2000:]


def test_an_ignore_index_that_is_a_class_is_refused(tmp_path, capsys):
    """--ignore-index 0 with a class on line 1: its pixels would be trained as
    a class and ignored at once (before: unseen pixels were mapped to 0 and
    trained as that class)."""
    root = tmp_path / 'data'
    _dataset(root, dict(train=[_label([0, 1])], val=[_label([0, 4])]))
    code, log = _convert(capsys, root, '--ignore-index', '0', '--out-dir', tmp_path / 'c')
    assert code == 2
    assert "--ignore-index 0 is the label value of the class 'sky'" in log
    assert not (tmp_path / 'c').exists()
    with pytest.raises(ValueError, match='cannot be stored'):
        check_ignore_index(70000, ClassList(['a', 'b']))


def test_method_settings_of_its_own_dataset_are_reset(repo_root):
    classes = ClassList(['sky', 'grass, lawn', 'car', 'road'], unseen=['car'])
    fcclip = Config.fromfile(
        str(repo_root / 'configs/ovshapes/fcclip_tiny-clip_1k_ovshapes-seen.py'))
    assert len(fcclip.model.decode_head.seen_vocabulary) == 28  # OVShapes' seen names
    delta, hooks = custom_model_delta(fcclip, classes, 255, with_train=True)
    assert delta['decode_head']['seen_vocabulary'] == ['sky', 'grass, lawn', 'road']
    assert delta['decode_head']['ignore_index'] == 255
    assert delta['data_preprocessor'] == dict(seg_pad_val=255)
    sclip = Config.fromfile(str(repo_root / 'configs/sclip/sclip_vit-b16_voc21.py'))
    assert sclip.model.vocabulary is not None and sclip.model.decode_head.prob_thd > 0
    delta, hooks = custom_model_delta(sclip, classes, 255, with_train=False)
    assert delta == dict(vocabulary=None, decode_head=dict(prob_thd=0.0))
    assert [h['type'] for h in hooks][-1] == 'DatasetVocabularyHook'
    with_background = ClassList(['background', 'car', 'road'], unseen=['car'])
    delta, _ = custom_model_delta(sclip, with_background, 255, with_train=False)
    assert delta == dict(vocabulary=None)  # a named background keeps the threshold


def test_written_config_of_a_mask_classification_method(tmp_path, capsys, repo_root):
    root = tmp_path / 'data'
    _dataset(root, dict(train=[_label([0, 1, 2, 3, 5])], val=[_label([0, 4, 1])]))
    code, log = _convert(capsys, root, '--out-dir', tmp_path / 'c', '--method',
                         repo_root / 'configs/ovshapes/zegformer_tiny-clip_1k_ovshapes-seen.py')
    assert code == 0, log
    cfg = Config.fromfile(str(tmp_path / 'c/data_zegformer_tiny-clip_1k_ovshapes-seen.py'))
    assert cfg.model.decode_head.seen_vocabulary == [
        'sky', 'grass, lawn', 'sand', 'red square', 'yellow square']


@pytest.mark.parametrize('train, val, message', [
    ([[4, 4]], [[0, 4]], 'the train split has no pixel of any seen class'),
    ([[0, 1, 2, 3, 5]], [[0, 1, 2]], 'the val split has no pixel of any unseen class'),
])
def test_classes_a_split_needs_are_checked(tmp_path, capsys, train, val, message):
    """Before, the check counted both splits together: training on unseen
    labels only ran with loss 0; an unseen class absent from val gave hIoU 0."""
    root = tmp_path / 'data'
    _dataset(root, dict(train=[_label(v) for v in train], val=[_label(v) for v in val]))
    code, log = _convert(capsys, root, '--out-dir', tmp_path / 'c')
    assert code == 1 and message in log, log
    assert not (tmp_path / 'c').exists()


def test_a_name_that_is_one_class_first_name_and_another_synonym():
    """'car' is the first name of class 0 and a synonym of class 1: the
    custom configs name unseen classes by their first names (before: the
    metric refused it after the whole training)."""
    assert resolve_class_specs(['car', 'truck, car'], ['car'], 'unseen_classes') == [0]
    with pytest.raises(ValueError, match='synonym of several classes'):
        resolve_class_specs(['bus, car', 'truck, car'], ['car'], 'unseen_classes')


def test_a_method_trained_on_several_sources_is_refused(tmp_path, capsys, repo_root):
    """OpenSeg trains on segmentation and captions (a ConcatDataset with
    MixedSourceSampler); before, its config was written and failed in training."""
    root = tmp_path / 'data'
    _dataset(root, dict(train=[_label([0, 1, 2, 3, 5])], val=[_label([0, 4, 1])]))
    method = repo_root / 'configs/ovshapes/openseg_tiny-clip_1k_ovshapes-seen-captions.py'
    code, log = _convert(capsys, root, '--out-dir', tmp_path / 'c', '--method', method)
    assert code == 2 and 'trains on several sources at once' in log, log
    assert not (tmp_path / 'c').exists()
