"""Makes an open-vocabulary segmentor follow the dataset's class names."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS

__all__ = ['DatasetVocabularyHook']


@HOOKS.register_module()
class DatasetVocabularyHook(Hook):
    """Sets the model's dataset vocabulary from ``dataset.metainfo``.

    Before training it takes the training set's ``classes``; before each
    validation or test run, the evaluated set's; after validation it restores
    the training vocabulary. An explicit vocabulary of the model
    (``model.vocabulary``) takes precedence and is left as it is.

    Use: ``custom_hooks = [dict(type='DatasetVocabularyHook')]``.
    """
    priority = 'VERY_HIGH'

    def __init__(self):
        self._train_metainfo: Optional[dict] = None

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

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
        print_log(f'{stage} vocabulary: {vocabulary}', logger='current')
        return metainfo

    def before_train(self, runner) -> None:
        self._train_metainfo = self._apply(runner, runner.train_loop, 'train')

    def before_val(self, runner) -> None:
        self._apply(runner, runner.val_loop, 'val')

    def after_val(self, runner) -> None:
        if self._train_metainfo is not None:
            self._model(runner).set_dataset_vocabulary(self._train_metainfo)

    def before_test(self, runner) -> None:
        self._apply(runner, runner.test_loop, 'test')
