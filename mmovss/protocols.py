"""Evaluation protocols: switch any config to any benchmark.

A *benchmark* is a dataset base, ``configs/_base_/datasets/<key>.py`` (its
test split, pipeline and metric). A *protocol* is how a method is evaluated
on a benchmark. Most methods have one protocol for every benchmark: the
dataset base as it is, with the vocabulary following the dataset
(``DatasetVocabularyHook``). The training-free families were published with
settings that differ per benchmark (class-name files, test resize, sliding
window, probability thresholds, logit scale); each family keeps them once, as
protocol bases ``configs/_base_/protocols/<family>/<key>.py``, and a method
names its family with the top-level config variable ``protocol`` (set in its
model base, e.g. ``protocol = 'sclip'`` in ``_base_/models/sclip_vit-b16.py``).

A protocol base holds the evaluation part of a config: the dataset base,
``default_runtime.py`` and ``schedules/inference_only.py`` as ``_base_``
(the runtime only so that a cited config needs no third base; the switch
keeps the config's own runtime), the test pipeline, and the
model settings of the protocol in the variable ``protocol_model`` (merged
into ``model``; a cited config does this with
``model = {{_base_.protocol_model}}``). Every protocol base of a family sets
the same model keys, so switching from one benchmark to another leaves no
setting of the first behind. See ``docs/configs.md``.

:func:`apply_benchmark` is the switch behind ``tools/test.py --benchmark``,
``tools/analysis_tools/benchmark.py --benchmark`` and
``OpenVocabInferencer(benchmark=...)``. The default protocol is
:data:`DEFAULT_PROTOCOL`: the dataset base, ``schedules/inference_only.py``
and ``vocabulary=None`` (with ``DatasetVocabularyHook``).
"""
import copy
import os
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config

__all__ = ['BENCHMARK_KEYS', 'DEFAULT_PROTOCOL', 'TRAINING_KEYS', 'apply_benchmark',
           'protocol_benchmarks', 'protocol_file', 'protocol_of']

#: Benchmark keys: the file names (without ``.py``) of
#: ``configs/_base_/datasets/`` (a test keeps the two in step).
BENCHMARK_KEYS: Tuple[str, ...] = (
    'ade20k_847', 'ade20k_150', 'pascal_context_459', 'pascal_context_59',
    'pascal_context_60', 'voc20', 'voc21', 'voc20b', 'coco_stuff171', 'coco_object',
    'cityscapes', 'ovshapes')

#: The protocol of a config that declares none: the dataset base as it is.
DEFAULT_PROTOCOL = 'dataset'

#: Keys set to None in a switched config: it evaluates, it does not train.
TRAINING_KEYS = ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler')

# Keys of a protocol (evaluation) base that are not copied as they are.
_NOT_COPIED = frozenset({'protocol_model', 'custom_hooks', *TRAINING_KEYS})
_VOCAB_HOOK = 'DatasetVocabularyHook'


def _configs_root() -> str:
    # imported here: mmovss.apis imports this module (the inferencer)
    from mmovss.apis.model_zoo import configs_root
    return configs_root()


def _check_key(key: str) -> None:
    if key not in BENCHMARK_KEYS:
        raise ValueError(f'Unknown benchmark {key!r}; valid keys are: '
                         f'{", ".join(BENCHMARK_KEYS)} (the dataset bases of '
                         f'configs/_base_/datasets/).')


def protocol_of(cfg: Config) -> str:
    """The protocol family a config declares (``protocol = ...``).

    Returns:
        str: The family, or :data:`DEFAULT_PROTOCOL` when none is declared.
    """
    family = cfg.get('protocol', None)
    return DEFAULT_PROTOCOL if family in (None, DEFAULT_PROTOCOL) else family


def protocol_benchmarks(family: str, root: Optional[str] = None) -> Tuple[str, ...]:
    """The benchmark keys a protocol family has settings for.

    Raises:
        ValueError: ``family`` has no folder ``configs/_base_/protocols/<family>/``.
    """
    if family == DEFAULT_PROTOCOL:
        return BENCHMARK_KEYS
    folder = osp.join(root or _configs_root(), '_base_', 'protocols', family)
    if not osp.isdir(folder):
        protocols = osp.dirname(folder)
        known = sorted(d for d in os.listdir(protocols)
                       if osp.isdir(osp.join(protocols, d))) if osp.isdir(protocols) else []
        raise ValueError(
            f'Unknown protocol {family!r} (the config\'s `protocol` variable): there is no '
            f'folder {folder}. Known protocols: {", ".join([DEFAULT_PROTOCOL, *known])}.')
    return tuple(k for k in BENCHMARK_KEYS if osp.isfile(osp.join(folder, f'{k}.py')))


def protocol_file(family: str, key: str, root: Optional[str] = None) -> str:
    """The protocol base of ``family`` on benchmark ``key``.

    For :data:`DEFAULT_PROTOCOL` it is the dataset base itself.

    Raises:
        ValueError: Unknown key, unknown family, or no setting of the family
            for this benchmark (the valid keys are listed).
    """
    _check_key(key)
    root = root or _configs_root()
    if family == DEFAULT_PROTOCOL:
        return osp.join(root, '_base_', 'datasets', f'{key}.py')
    keys = protocol_benchmarks(family, root)
    if key not in keys:
        raise ValueError(
            f'Protocol {family!r} has no setting for benchmark {key!r} (no file '
            f'configs/_base_/protocols/{family}/{key}.py); its benchmarks are: '
            f'{", ".join(keys)}.')
    return osp.join(root, '_base_', 'protocols', family, f'{key}.py')


def _read(path: str) -> Config:
    # the plugin is imported by whoever calls apply_benchmark
    return Config.fromfile(path, import_custom_modules=False)


def _evaluation_base(family: str, key: str, root: str) -> Config:
    """The evaluation part of a config for ``key`` under ``family``.

    The default protocol is the dataset base, ``schedules/inference_only.py``
    and a vocabulary that follows the dataset (``protocol_model``).
    """
    cfg = _read(protocol_file(family, key, root))
    if family == DEFAULT_PROTOCOL:
        cfg.merge_from_dict(
            _read(osp.join(root, '_base_', 'schedules', 'inference_only.py')).to_dict())
        cfg.protocol_model = dict(vocabulary=None)
    return cfg


def _runtime_keys(root: str) -> frozenset:
    """Keys of ``default_runtime.py``: a switch keeps the config's own."""
    return frozenset(_read(osp.join(root, '_base_', 'default_runtime.py')).keys())


def _sync_vocabulary_hook(cfg: Config) -> None:
    """``DatasetVocabularyHook`` present iff ``model.vocabulary`` is None."""
    hooks = list(cfg.get('custom_hooks') or [])
    is_vocab_hook = [isinstance(h, dict) and h.get('type') == _VOCAB_HOOK for h in hooks]
    if cfg.model.get('vocabulary', None) is None:
        if not any(is_vocab_hook):
            cfg.custom_hooks = hooks + [dict(type=_VOCAB_HOOK)]
    elif any(is_vocab_hook):
        cfg.custom_hooks = [h for h, drop in zip(hooks, is_vocab_hook) if not drop] or None


def apply_benchmark(cfg: Config, key: str) -> Config:
    """Returns ``cfg`` switched to evaluate on benchmark ``key``.

    The model and runtime (the keys of ``default_runtime.py``) of ``cfg``
    are kept; its evaluation part (test and validation data, pipeline,
    metric, loops, hooks of ``schedules/inference_only.py``) comes from the
    protocol base of its family (:func:`protocol_of`) for ``key``, whose
    ``protocol_model`` is merged into ``model`` (class names, thresholds,
    sliding window of the training-free families; for the default protocol,
    ``vocabulary=None``: the vocabulary follows the dataset). The training
    part is set to None: the result is an evaluation config, as the
    per-benchmark files it replaces. A ``DatasetVocabularyHook`` is then
    kept exactly when ``model.vocabulary`` is None.

    Args:
        cfg (Config): A method config (training, training-free or another
            benchmark's evaluation config). Not modified.
        key (str): One of :data:`BENCHMARK_KEYS`, e.g. ``'ade20k_847'``.

    Returns:
        Config: A new config.

    Raises:
        ValueError: Unknown benchmark key (the valid keys are listed), or the
            config's protocol has no setting for it.
    """
    _check_key(key)
    root = _configs_root()
    family = protocol_of(cfg)
    evaluation = _evaluation_base(family, key, root)
    out = copy.deepcopy(cfg)
    kept = _NOT_COPIED | _runtime_keys(root)
    for name, value in evaluation.items():
        if name not in kept:
            out[name] = copy.deepcopy(value)
    for name in TRAINING_KEYS:
        out[name] = None
    model_delta = evaluation.get('protocol_model', None)
    if model_delta is not None:
        delta = model_delta.to_dict() if hasattr(model_delta, 'to_dict') else model_delta
        out.merge_from_dict(dict(model=copy.deepcopy(delta)))
        if 'vocabulary' in model_delta:
            _sync_vocabulary_hook(out)
    return out
