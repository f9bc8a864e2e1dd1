"""Accuracy of a low inference precision against float32, on a dataset.

One trained checkpoint is built twice, once in float32 and once with
``test_cfg.inference_dtype`` (and ``precision_mode``) set; both run every
image of the config's test dataloader and are scored by the config's
evaluator. The result gives both metric sets, their differences and the
share of pixels whose label is the same in both runs: the agreement rule of
docs/benchmarks.md ("Mixed precision: accuracy": at most 0.5 mIoU points of
change, at least 99.5% of labels equal on a trained model).
"""
import copy
from typing import Dict, Optional

import torch

from ..evaluation.side_by_side import (
    build_evaluators,
    build_test_loader,
    evaluate_quietly,
    use_dataset_vocabulary,
)

__all__ = ['LABEL_AGREEMENT', 'compare_precisions', 'format_precision_report']

#: The agreement rule's share of labels that a low precision must keep equal
#: to float32 (docs/benchmarks.md, "Mixed precision: accuracy").
LABEL_AGREEMENT = 0.995


def _build(cfg, checkpoint: str, dtype: str, precision_mode: Optional[str], loader):
    from mmseg.registry import MODELS

    from ..runtime import load_model_checkpoint_strictly

    model_cfg = copy.deepcopy(cfg.model)
    test_cfg = dict(model_cfg.get('test_cfg') or {})
    test_cfg['inference_dtype'] = dtype
    if precision_mode is not None:
        test_cfg['precision_mode'] = precision_mode
    model_cfg['test_cfg'] = test_cfg
    model = MODELS.build(model_cfg)
    try:  # as tools/test.py: file checks, weights only, a foreign file names its keys
        load_model_checkpoint_strictly(model, checkpoint)
    except RuntimeError as err:
        raise ValueError(str(err)) from None
    model.eval()
    use_dataset_vocabulary(model, loader)
    return model


def compare_precisions(cfg, checkpoint: str, dtype: str = 'bf16',
                       precision_mode: Optional[str] = None,
                       max_images: Optional[int] = None) -> Dict[str, object]:
    """Runs the test set in float32 and in ``dtype``; metrics and agreement.

    Args:
        cfg (mmengine.Config): The config (``--cfg-options`` applied), with
            ``test_dataloader`` and ``test_evaluator``.
        checkpoint (str): Trained weights, loaded strictly into both models.
        dtype (str): ``'bf16'`` (or ``'fp16'`` on CUDA).
        precision_mode (str, optional): ``test_cfg.precision_mode`` of the
            low-precision model (None: the config's / the segmentor's
            default).
        max_images (int, optional): Stop after this many images.

    Returns:
        dict: ``fp32`` and ``low`` (metric dicts), ``diff`` (low - fp32 per
        metric), ``labels_equal`` (fraction of pixels), ``pixels``,
        ``images``, ``run`` (the precision the low model ran, ``'fp32'``
        after a fallback) and ``dtype`` / ``precision_mode``.
    """
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    loader = build_test_loader(cfg)
    metainfo = loader.dataset.metainfo
    models = {'fp32': _build(cfg, checkpoint, 'fp32', None, loader),
              'low': _build(cfg, checkpoint, dtype, precision_mode, loader)}
    evaluators = build_evaluators(cfg, models, metainfo)
    equal = pixels = images = 0
    with torch.no_grad():
        for data in loader:
            labels = {}
            for key, model in models.items():
                outputs = model.test_step(data)
                evaluators[key].process(data_samples=outputs, data_batch=data)
                labels[key] = [o.pred_sem_seg.data for o in outputs]
            for a, b in zip(labels['fp32'], labels['low']):
                equal += int((a == b).sum())
                pixels += a.numel()
            images += len(labels['fp32'])
            if max_images is not None and images >= max_images:
                break
    metrics = evaluate_quietly(evaluators, images)
    diff = {k: metrics['low'][k] - v for k, v in metrics['fp32'].items()
            if isinstance(v, float) and isinstance(metrics['low'].get(k), float)}
    low = models['low']
    precision = getattr(low, 'inference_precision', None) or {}
    mode = low._precision_mode() if hasattr(low, '_precision_mode') else 'autocast'
    return dict(fp32=metrics['fp32'], low=metrics['low'], diff=diff,
                labels_equal=equal / max(pixels, 1), pixels=pixels, images=images,
                run=precision.get('run', dtype), dtype=dtype, precision_mode=mode)


def format_precision_report(result: dict) -> str:
    """The comparison as text lines: one per metric, then the agreement."""
    low = f"{result['dtype']} ({result['precision_mode']}, ran {result['run']})"
    lines = [f"{'metric':<16} {'fp32':>9} {low:>9}  change"]
    for key, value in result['fp32'].items():
        if key in result['diff']:
            lines.append(f"{key:<16} {value:9.2f} {result['low'][key]:9.2f}  "
                         f"{result['diff'][key]:+.2f}")
    lines.append(f"labels equal     {100 * result['labels_equal']:.3f}% of "
                 f"{result['pixels']} pixels, {result['images']} images")
    return '\n'.join(lines)
