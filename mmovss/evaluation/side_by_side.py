"""Several runs over one test set, each scored by its own copy of the
config's evaluator (used by the precision agreement and the stage oracles).
"""
import copy
import logging
import numbers
from typing import Dict, Iterable

__all__ = ['build_evaluators', 'evaluate_quietly']


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
