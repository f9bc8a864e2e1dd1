"""Makes an open-vocabulary segmentor follow the dataset's class names."""
import warnings
from typing import Optional

from mmovss.vocab import Vocabulary

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..model_wrappers import unwrap_segmentor

__all__ = ['DatasetVocabularyHook']


@HOOKS.register_module()
class DatasetVocabularyHook(Hook):
    """Sets the model's dataset vocabulary from ``dataset.metainfo``.

    Before training it takes the training set's ``classes``; before each
    validation or test run, the evaluated set's; after validation it restores
    the training vocabulary. An explicit vocabulary of the model
    (``model.vocabulary``) takes precedence and is left as it is.

    Label ``i`` of the dataset is scored (and trained) as class ``i`` of the
    vocabulary in use, so an explicit vocabulary that does not describe the
    dataset is checked at every stage: a different number of classes raises
    a ``ValueError`` (the metric would silently mis-score). With the same
    number of classes, a class none of whose names (compared ignoring case
    and spaces) is among the names of its dataset label is a renaming
    (legitimate and common: the published name lists say ``'ship'`` for
    VOC's ``'boat'``), logged once; but if its names belong to *another*
    label, the vocabulary looks reordered and a warning names the labels.

    Use: ``custom_hooks = [dict(type='DatasetVocabularyHook')]``.
    """
    priority = 'VERY_HIGH'

    def __init__(self):
        self._train_metainfo: Optional[dict] = None

    @staticmethod
    def _model(runner):
        """The segmentor inside DDP and test-time-augmentation wrappers."""
        return unwrap_segmentor(runner.model)

    def _apply(self, runner, loop, stage: str) -> Optional[dict]:
        model = self._model(runner)
        if not hasattr(model, 'set_dataset_vocabulary'):
            print_log(f'DatasetVocabularyHook: {type(model).__name__} has no '
                      f'set_dataset_vocabulary(); hook ignored.',
                      logger='current')
            return None
        metainfo = getattr(loop.dataloader.dataset, 'metainfo', None)
        if not metainfo or not metainfo.get('classes'):
            raise ValueError(
                f'DatasetVocabularyHook: the {stage} dataset has no '
                f'metainfo["classes"]; give the dataset METAINFO classes or '
                f'set model.vocabulary explicitly.')
        vocabulary = model.set_dataset_vocabulary(metainfo)
        explicit = getattr(model, 'explicit_vocabulary', None)
        if explicit is not None:
            self.check_explicit_vocabulary(
                explicit, Vocabulary.build(metainfo),
                f'the {stage} dataset '
                f'({type(loop.dataloader.dataset).__name__})')
        print_log(f'{stage} vocabulary: {vocabulary}', logger='current')
        return metainfo

    @staticmethod
    def check_explicit_vocabulary(explicit: Vocabulary, dataset: Vocabulary,
                                  where: str) -> None:
        """Checks that an explicit vocabulary describes a dataset's labels.

        Args:
            explicit (Vocabulary): ``model.vocabulary``.
            dataset (Vocabulary): The vocabulary of the dataset's METAINFO.
            where (str): How to name the dataset in messages.

        Raises:
            ValueError: The class counts differ.
        """
        fix = ('remove model.vocabulary to follow the dataset, or give one '
               'class per dataset label in the dataset\'s order (synonyms '
               'allowed: \'tv, television\')')
        if explicit.num_classes != dataset.num_classes:
            raise ValueError(
                f'The explicit vocabulary (model.vocabulary, '
                f'{explicit.num_classes} classes from {explicit.source}) '
                f'does not match {where}, whose labels are '
                f'{dataset.num_classes} classes ({dataset.class_names[:5]}'
                f'{"..." if len(dataset) > 5 else ""}): predictions would be '
                f'scored against the wrong labels. Fix: {fix}.')

        def keys(names):
            return {''.join(n.lower().split()) for n in names}

        dataset_keys = [keys(names) for names in dataset.classes]
        renamed, moved = [], []
        for i, names in enumerate(explicit.classes):
            own = keys(names)
            if own & dataset_keys[i]:
                continue
            renamed.append(i)
            moved.extend((i, j) for j, other in enumerate(dataset_keys)
                         if own & other)
        if moved:
            shown = ', '.join(
                f'vocabulary class {i} {explicit.class_names[i]!r} is '
                f'dataset label {j} {dataset.class_names[j]!r}'
                for i, j in moved[:5])
            more = f' and {len(moved) - 5} more' if len(moved) > 5 else ''
            warnings.warn(
                f'The explicit vocabulary (model.vocabulary, from '
                f'{explicit.source}) looks reordered with respect to {where}:'
                f' {shown}{more}. Label i is scored as vocabulary class i; '
                f'if the order is not deliberate, {fix}.')
        elif renamed:
            print_log(
                f'The explicit vocabulary names {len(renamed)} of the '
                f'{dataset.num_classes} classes of {where} differently '
                f'(label {renamed[0]}: {dataset.class_names[renamed[0]]!r} '
                f'-> {explicit.class_names[renamed[0]]!r}, ...); label i is '
                f'scored as vocabulary class i.', logger='current')

    def before_train(self, runner) -> None:
        self._train_metainfo = self._apply(runner, runner.train_loop, 'train')

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_loop, 'val')

    def after_val(self, runner) -> None:
        if self._train_metainfo is not None:
            self._model(runner).set_dataset_vocabulary(self._train_metainfo)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_loop, 'test')
