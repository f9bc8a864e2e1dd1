"""The segmentor of a config, built for a benchmark.

As ``tools/test.py`` builds it (config loaded with ``--cfg-options``, the
plugin registered), with random stand-ins for its weight sources
(:mod:`.random_weights`) or its own, a trained checkpoint loaded strictly on
top, a vocabulary, and an inference precision.
"""
import contextlib
import copy
import sys
from typing import List, Optional

import torch

from .errors import BenchmarkError
from .random_weights import (
    pop_sam_markers,
    quiet_init_weights,
    randomize_sam,
    sam_marker,
    use_random_weights,
)
from .vocabulary import load_vocabulary, synthetic_vocabulary

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}


def load_benchmark_config(path: str, cfg_options=None):
    """The config as ``tools/test.py`` loads it (clear error if missing)."""
    from mmovss.runtime import load_config
    try:
        return load_config(path, cfg_options)
    except FileNotFoundError as err:
        raise BenchmarkError(str(err)) from None


def load_checkpoint_strictly(model: torch.nn.Module, path: str) -> None:
    """Loads a checkpoint into ``model``; refuses one of another model.

    The loader of ``tools/test.py``
    (:func:`mmovss.runtime.load_model_checkpoint_strictly`), with its errors
    as :class:`BenchmarkError`.

    Raises:
        BenchmarkError: Missing, truncated or foreign checkpoint.
    """
    from mmovss.runtime import load_model_checkpoint_strictly
    try:
        # mmengine prints "Loads checkpoint ...": stdout is the report
        with contextlib.redirect_stdout(sys.stderr):
            load_model_checkpoint_strictly(model, path)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        raise BenchmarkError(str(err)) from None


def build_model(cfg, weights: str, checkpoint: Optional[str], device: str,
                notes: List[str], seed: int = 0):
    """Builds the segmentor of a config with the requested weights.

    Args:
        cfg (Config): The loaded config.
        weights (str): ``'random'`` (no weight file or download) or
            ``'config'`` (the config's own weight sources).
        checkpoint (str, optional): A trained checkpoint loaded strictly on
            top (as ``tools/test.py``).
        device (str): ``'cpu'`` or ``'cuda[:i]'``.
        notes (list[str]): Receives lines for the report.
        seed (int): Seed of the random initialisation.

    Returns:
        nn.Module: The model in eval mode, on ``device``.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    sam_type = None
    if weights == 'random':
        # with a checkpoint the pretrained sources are only skipped (the
        # checkpoint fills every weight): no note of random weights then
        use_random_weights(model_cfg, notes if checkpoint is None else [])
        sam_type = sam_marker(model_cfg)
        pop_sam_markers(model_cfg)
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    if weights == 'random':
        # Modules left to their constructors may hold torch.empty memory.
        quiet_init_weights(model)
        if sam_type is not None:
            randomize_sam(model, sam_type, seed)
    if checkpoint is not None:
        load_checkpoint_strictly(model, checkpoint)
        notes.append(f'weights: {checkpoint} (every weight; pretrained sources not read)')
    return model.eval().to(device)


def choose_vocabulary(model, cfg, vocabulary: Optional[str],
                      num_classes: Optional[int]):
    """Sets the model's vocabulary and returns it.

    Priority: ``--vocabulary`` / ``--num-classes``, then the config's
    explicit vocabulary, then the class names of its test dataset.
    """
    from mmseg.models.segmentors import BaseSegmentor
    if not hasattr(model, 'set_vocabulary') or not isinstance(model, BaseSegmentor):
        # e.g. MaskPromptTuner of a mask-prompt-tuning config, which classifies
        # region crops (was: AttributeError 'explicit_vocabulary')
        raise BenchmarkError(
            f'{type(model).__name__} is not an open-vocabulary segmentor '
            f'(no set_vocabulary, or not an mmseg segmentor): give the config '
            f'of a segmentor (for a training-only config, the config that '
            f'tests its result).')
    if vocabulary is not None:
        return model.set_vocabulary(load_vocabulary(vocabulary))
    if num_classes is not None:
        return model.set_vocabulary(synthetic_vocabulary(num_classes))
    if model.explicit_vocabulary is not None:
        return model.explicit_vocabulary
    from mmovss.apis.open_vocab_inferencer import OpenVocabInferencer
    meta = OpenVocabInferencer._test_dataset_meta(cfg)
    if not meta:
        raise BenchmarkError(
            'The config names no vocabulary and its test dataset has no '
            'classes: pass --vocabulary NAME or --num-classes N.')
    return model.set_dataset_vocabulary(meta)


def precision_context(model, dtype: Optional[str], device: str):
    """How the model runs in ``dtype``: a context-manager factory and a note.

    The segmentors' mixed-precision switch, ``test_cfg.inference_dtype``
    (:mod:`mmovss.models.utils.mixed_precision`: autocast of the image and
    text towers, float32 heads; with ``test_cfg.precision_mode='cast'`` the
    weights cast once, :mod:`mmovss.models.utils.low_precision`), is set
    when the model has it; other models
    run their whole forward under ``torch.autocast``.

    Args:
        model: The segmentor (None: only validate).
        dtype: ``'fp32'``, ``'bf16'``, ``'fp16'`` or None (the config's
            ``test_cfg.inference_dtype``, else fp32).
        device: The model's device.

    Raises:
        BenchmarkError: Unknown dtype, or fp16 on CPU (PyTorch's CPU
            autocast computes in bfloat16 only).
    """
    device_type = torch.device(device).type
    test_cfg = getattr(model, 'test_cfg', None)
    if dtype is None:
        dtype = str((test_cfg or {}).get('inference_dtype') or 'fp32')
        dtype = {'float32': 'fp32', 'bfloat16': 'bf16',
                 'float16': 'fp16'}.get(dtype, dtype)
    if dtype not in DTYPES:
        raise BenchmarkError(f'--dtype {dtype!r}: use one of {list(DTYPES)}.')
    if device_type == 'cpu' and dtype == 'fp16':
        raise BenchmarkError(
            '--dtype fp16 is not supported on CPU (PyTorch\'s CPU autocast '
            'computes in bfloat16 only); use --dtype bf16 on CPU, or '
            '--device cuda for fp16.')
    if model is None:
        return contextlib.nullcontext, dtype
    if isinstance(test_cfg, dict):
        test_cfg['inference_dtype'] = dtype
        how = 'autocast towers'
        if hasattr(model, 'cast_modules') and model._precision_mode() == 'cast':
            # models/utils/low_precision.py
            parts = dict(backbone='image tower', neck='neck',
                         decode_head='decode head', text_encoder='text tower')
            cast = [m for m in model.cast_modules() if m is not None]
            labels = [label for name, label in parts.items()
                      if any(getattr(model, name, None) is m for m in cast)]
            if any(all(getattr(model, name, None) is not m for name in parts)
                   for m in cast):  # the two-stage methods' region classifiers
                labels.append("crops' CLIP tower")
            how = ', '.join(labels) + ' cast once'

        return contextlib.nullcontext, (
            dtype if dtype == 'fp32' else
            f'{dtype} (test_cfg.inference_dtype: {how})')
    if dtype == 'fp32':
        return contextlib.nullcontext, 'fp32'
    return (lambda: torch.autocast(device_type, dtype=DTYPES[dtype]),
            f'{dtype} (torch.autocast of the whole forward)')
