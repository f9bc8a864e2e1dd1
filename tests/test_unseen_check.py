"""tools/test.py warns when the evaluation's unseen classes were training
classes of the checkpoint (its meta.dataset_meta.classes): mIoU_unseen and
hIoU would not measure open-vocabulary transfer (before 2026-12-07: no word)."""
import torch

from mmovss.evaluation.unseen_check import checkpoint_training_classes, trained_unseen_classes
from mmovss.ovshapes import world
from mmovss.testing.tools import REPO_ROOT, load_tool

from mmengine.config import Config
from mmengine.registry import init_default_scope

REFINE = str(REPO_ROOT / 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py')


def test_trained_unseen_classes_compares_first_names():
    assert trained_unseen_classes(['Sky', 'grass, lawn'], ['sky', 'lawn', 'car'], [0, 2]) == \
        ['sky']
    assert trained_unseen_classes(['grass, lawn'], ['lawn', 'grass'], [0]) == []


def _checkpoint(path, classes):
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(REFINE).model)
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {
        'classes': list(classes)}}}, path)
    return str(path)


def test_test_py_warns_about_unseen_classes_the_checkpoint_trained_on(tmp_path, capsys):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path / 'world'
    write_world(root, seed=5, num_train=0, num_val=2)
    tool = load_tool('test.py')
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={root}']
    names = world.class_names()
    every = _checkpoint(tmp_path / 'all.pth', names)  # trained on all 40 classes
    assert checkpoint_training_classes(every) == list(names)
    tool.main([REFINE, every, '--work-dir', str(tmp_path / 'w1'), *options])
    log = capsys.readouterr()
    text = log.out + log.err
    assert 'WARNING: unseen classes' in text and 'were training classes' in text
    warning = text.split('WARNING: unseen classes')[1].split('were training classes')[0]
    assert all(repr(n) in warning for n in world.unseen_class_names())
    seen_only = _checkpoint(tmp_path / 'seen.pth', world.seen_class_names())
    tool.main([REFINE, seen_only, '--work-dir', str(tmp_path / 'w2'), *options])
    log = capsys.readouterr()
    assert 'WARNING: unseen classes' not in log.out + log.err
