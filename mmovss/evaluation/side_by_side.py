"""Several runs over one test set, each scored by its own copy of the
config's evaluator (used by the precision agreement and the stage oracles),
and the command line those tools share.
"""
import copy
import logging
import numbers
from typing import Dict, Iterable, NoReturn

__all__ = ['build_test_loader', 'use_dataset_vocabulary', 'build_evaluators', 'evaluate_quietly',
           'side_by_side_parser', 'run_side_by_side_tool']


def build_test_loader(cfg, **overrides):
    """The config's test dataloader (``overrides`` set on a copy of
    ``cfg.test_dataloader``), refused when its test set has no image.

    Raises:
        ValueError: An empty test set (e.g. ``test_dataloader.dataset.indices=0``
            or an empty ``ann_file``), whose metrics would be those of no image.
    """
    from mmengine.runner import Runner
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.update(overrides)
    loader = Runner.build_dataloader(loader_cfg)
    if len(loader.dataset) == 0:
        dataset = loader_cfg.get('dataset', {})
        raise ValueError(
            f"the test set of this config has no image ({dataset.get('type')}, "
            f"data_root={dataset.get('data_root')!r}); check "
            f'test_dataloader.dataset (data_root, ann_file, indices).')
    return loader


def use_dataset_vocabulary(model, loader) -> None:
    """Gives ``model`` the vocabulary of the test set, as ``tools/test.py``
    does (:class:`~mmovss.engine.DatasetVocabularyHook`): an explicit
    ``model.vocabulary`` is checked against the dataset's classes.

    Raises:
        ValueError: An explicit vocabulary of another class count than the
            test set (its predictions would be scored against other labels).
    """
    if not hasattr(model, 'set_dataset_vocabulary'):
        return
    from mmovss.engine.hooks.dataset_vocabulary_hook import DatasetVocabularyHook
    from mmovss.vocab import Vocabulary
    metainfo = loader.dataset.metainfo
    model.set_dataset_vocabulary(metainfo)
    explicit = getattr(model, 'explicit_vocabulary', None)
    if explicit is not None:
        DatasetVocabularyHook.check_explicit_vocabulary(
            explicit, Vocabulary.build(metainfo),
            f'the test dataset ({type(loader.dataset).__name__})')


def build_evaluators(cfg, runs: Iterable[str], metainfo: dict) -> Dict[str, object]:
    """One ``mmengine`` :class:`Evaluator` of ``cfg.test_evaluator`` per run,
    with ``dataset_meta`` set to ``metainfo``."""
    from mmengine.evaluator import Evaluator
    evaluators = {}
    for run in runs:
        evaluator = Evaluator(copy.deepcopy(cfg.test_evaluator))
        evaluator.dataset_meta = metainfo
        evaluators[run] = evaluator
    return evaluators


def evaluate_quietly(evaluators: Dict[str, object], size: int) -> Dict[str, dict]:
    """``evaluate(size)`` of every evaluator, its numbers as Python floats,
    without the metric's per-class tables in the log."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        return {run: {k: float(v) if isinstance(v, numbers.Real) else v
                      for k, v in evaluator.evaluate(size).items()}
                for run, evaluator in evaluators.items()}
    finally:
        logger.setLevel(level)


def side_by_side_parser(description: str):
    """The arguments every side-by-side tool takes: CONFIG, CHECKPOINT,
    ``--max-images``, ``--json`` (with ``--overwrite``) and ``--cfg-options``
    (add your own)."""
    import argparse

    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='trained checkpoint (loaded strictly)')
    parser.add_argument('--max-images', type=int, default=None,
                        help='stop after this many test images')
    parser.add_argument('--json', help='also write the result to this JSON file (a new '
                        'file: checked before the run)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --json file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, as tools/test.py')
    return parser


def _user_error(message: str) -> NoReturn:
    """Ends the program with ``error: <message>`` and exit code 2."""
    import sys
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)


def run_side_by_side_tool(parser, argv, measure, report):
    """Parses ``argv``, checks the checkpoint, loads the config (with
    ``--cfg-options``), calls ``measure(cfg, args)``, prints
    ``report(result)`` and writes ``--json`` (checked before the run by
    :func:`mmovss.io.check_output_file`: never the config, the checkpoint or a
    dataset file, an existing file only with ``--overwrite``); a ValueError
    or a FileNotFoundError (a dataset folder that does not exist) ends the
    program with its message and exit code 2, as
    :func:`mmovss.runtime.run_tool` and ``tools/test.py`` (argparse's code
    for a usage error)."""
    import json
    import os
    import os.path as osp

    from mmovss.io import UnsafeOutputError, check_output_file
    from mmovss.runtime import config_dataset_folders, load_config, merge_cfg_options
    args = parser.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        parser.error('--max-images must be >= 1')
    if not osp.isfile(args.checkpoint):
        _user_error(f'checkpoint {args.checkpoint!r} does not exist; pass the '
                    f'.pth file tools/train.py wrote (e.g. work_dirs/NAME/iter_1000.pth).')
    cfg = load_config(args.config)
    if args.cfg_options:
        merge_cfg_options(cfg, args.cfg_options)
    if args.json:
        try:
            check_output_file(args.json, overwrite=args.overwrite,
                              protected_dirs=config_dataset_folders(cfg),
                              protected_files=[args.config, args.checkpoint])
        except UnsafeOutputError as err:
            _user_error(str(err))
    try:
        result = measure(cfg, args)
    except (ValueError, FileNotFoundError) as err:
        _user_error(str(err))
    print(report(result))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result
