"""Refuses to evaluate a trained model whose learned weights were not loaded.

A config of a *trained* method (LSeg, CAT-Seg, SAN, FC-CLIP, the OVShapes
decoders, ...) builds a model whose decoder (and sometimes parts of CLIP) is
randomly initialised; only a checkpoint gives it meaning. Run without one, the
model still produces a (meaningless) mIoU. *Training-free* configs (MaskCLIP,
SCLIP, ClearCLIP, NACLIP, ProxyCLIP, SAM + CLIP, OVShapes' zero-shot dense
CLIP) take every weight from named pretrained sources and need no checkpoint.

The rule, decided on the built model: **a model with at least one parameter
that training would update (``requires_grad=True``) is a trained model**, and
evaluating it needs a checkpoint (``tools/test.py CONFIG CHECKPOINT``, the
config's ``load_from``, or ``--weights``). Training-free models freeze every
parameter (their CLIP, DINO and SAM towers are built frozen). Intentional
random-weight runs (speed benchmarks, debugging) pass
``--allow-random-weights``.
"""
from typing import List, Optional

import torch.nn as nn

__all__ = ['MissingTrainedWeights', 'learned_parameter_names', 'require_trained_weights']


class MissingTrainedWeights(ValueError):
    """A trained model is about to run with randomly initialised weights."""


def learned_parameter_names(model: nn.Module) -> List[str]:
    """Names of the parameters training would update (``requires_grad``)."""
    return [name for name, param in model.named_parameters() if param.requires_grad]


def require_trained_weights(model: nn.Module, checkpoint: Optional[str],
                            allow_random: bool = False, config: Optional[str] = None,
                            api: bool = False) -> None:
    """Raises unless ``model`` is training-free, a checkpoint is given, or allowed.

    Args:
        model (nn.Module): The built model (wrappers included).
        checkpoint (str, optional): The checkpoint that will be loaded.
        allow_random (bool): Accept random learned weights on purpose.
        config (str, optional): The config's name, for the message.
        api (bool): Name the Python arguments (``weights=``,
            ``allow_random_weights=True``) in the message, not the flags.

    Raises:
        MissingTrainedWeights: A trained model, no checkpoint, not allowed.
    """
    if checkpoint or allow_random:
        return
    learned = learned_parameter_names(model)
    if not learned:
        return
    what = f'Config {config!r}' if config else 'This model'
    if api:
        raise MissingTrainedWeights(
            f'{what} is a trained model ({len(learned)} learned parameter tensors, e.g. '
            f'{", ".join(learned[:3])}) but no weights were given: its results would come '
            f'from random weights. Pass OpenVocabInferencer(config, weights=CHECKPOINT) '
            f'(or a released model name); training-free configs need none. For an '
            f'intentional random-weight run pass allow_random_weights=True.')
    raise MissingTrainedWeights(
        f'{what} is a trained model ({len(learned)} learned parameter tensors, e.g. '
        f'{", ".join(learned[:3])}) but no checkpoint was given: its results would come '
        f'from random weights. Pass the trained checkpoint (tools/test.py CONFIG '
        f'CHECKPOINT, tools/demo.py --weights CHECKPOINT, or load_from in the config); '
        f'training-free configs need none. For an intentional random-weight run (speed, '
        f'debugging) pass --allow-random-weights.')
