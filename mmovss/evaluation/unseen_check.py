"""Are the evaluation's unseen classes really unseen by the checkpoint?

``tools/test.py`` reports mIoU over unseen classes and hIoU (Xian et al.,
CVPR 2019, harmonic mean of seen and unseen mIoU; the open-vocabulary
protocol of ZegFormer / ZSSeg). They measure transfer only when the unseen
classes were not among the classes the checkpoint was trained on, which an
mmengine checkpoint records (``meta.dataset_meta.classes`` of its training
set). A config whose unseen list differs from the training run's (another
``--unseen`` of ``custom_dataset.py``, an edited split) would print a high
"unseen" mIoU for trained classes; :class:`UnseenClassesCheckHook` warns
before the test loop runs, naming the classes.
"""
from typing import List, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.logging import print_log

__all__ = ['checkpoint_training_classes', 'trained_unseen_classes', 'UnseenClassesCheckHook']


def checkpoint_training_classes(path: str) -> Optional[List[str]]:
    """``meta.dataset_meta.classes`` of an mmengine checkpoint, or None (a
    converted release, a bare state dict; :func:`mmovss.runtime.checkpoint_meta`)."""
    from mmovss.runtime import checkpoint_meta
    dataset_meta = checkpoint_meta(path).get('dataset_meta')
    classes = dataset_meta.get('classes') if isinstance(dataset_meta, dict) else None
    return list(classes) if classes else None


def _first_name(entry: str) -> str:
    return ' '.join(str(entry).split(',')[0].split()).lower()


def trained_unseen_classes(trained: Sequence[str], test_classes: Sequence[str],
                           unseen: Sequence[int]) -> List[str]:
    """Display names of the unseen test classes that are training classes.

    Args:
        trained: Class entries of the training set (the checkpoint's
            ``meta.dataset_meta.classes``).
        test_classes: Class entries of the test set.
        unseen: Indices of the unseen test classes.

    Returns:
        list[str]: The unseen classes whose first name is the first name of a
        training class (case and spacing ignored).
    """
    trained_names = {_first_name(c) for c in trained}
    return [str(test_classes[i]).split(',')[0].strip() for i in unseen
            if _first_name(test_classes[i]) in trained_names]


class UnseenClassesCheckHook(Hook):
    """Warns before testing when an unseen class was a training class.

    Args:
        trained_classes (Sequence[str], optional): The checkpoint's training
            classes; None (a checkpoint without them, e.g. a converted
            release) checks nothing.
        checkpoint (str): The checkpoint's path, for the message.
    """

    priority = 'LOW'

    def __init__(self, trained_classes: Optional[Sequence[str]], checkpoint: str = ''):
        self.trained_classes = list(trained_classes) if trained_classes else None
        self.checkpoint = checkpoint
        self.found: List[str] = []

    def before_test(self, runner) -> None:
        from .ov_iou_metric import OpenVocabIoUMetric
        if not self.trained_classes:
            return
        evaluator = runner.test_loop.evaluator
        test_classes = (evaluator.dataset_meta or {}).get('classes')
        if not test_classes:
            return
        for metric in evaluator.metrics:
            if isinstance(metric, OpenVocabIoUMetric) and metric.unseen_classes is not None:
                unseen = metric._resolve(metric.unseen_classes, 'unseen_classes')
                self.found = trained_unseen_classes(self.trained_classes, test_classes, unseen)
                break
        if self.found:
            print_log(
                f'WARNING: unseen classes {self.found} of this evaluation were training '
                f'classes of the checkpoint {self.checkpoint!r} (its meta.dataset_meta.classes): '
                'mIoU_unseen and hIoU do not measure open-vocabulary transfer here. Evaluate '
                'with the unseen classes of the training run (the config it was trained with).',
                logger='current', level=30)
