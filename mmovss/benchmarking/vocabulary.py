"""Vocabularies to benchmark with: benchmark keys, dataset types, files."""
import os.path as osp
from typing import List

from .errors import BenchmarkError


def load_vocabulary(spec: str):
    """A vocabulary from a benchmark key, a dataset type or a text file.

    Args:
        spec: A key of :data:`mmovss.vocab.benchmarks.BENCHMARK_NAMES`
            (``'ade20k_847'``, ``'pascal_context_459'``, ``'coco_stuff171'``
            ...), a registered dataset type (its ``METAINFO`` classes, e.g.
            ``'ADE20K847Dataset'``) or a text file with one class per line.

    Returns:
        Vocabulary: The classes (with their synonyms).

    Raises:
        BenchmarkError: ``spec`` is none of these.
    """
    import mmovss  # noqa: F401  (registers the datasets)
    from mmovss.vocab import Vocabulary
    from mmovss.vocab.benchmarks import BENCHMARK_NAMES, load_benchmark_classes
    if osp.isfile(spec):
        return Vocabulary.from_file(spec)
    if spec in BENCHMARK_NAMES:
        return Vocabulary(load_benchmark_classes(spec), source=spec)
    from mmseg.registry import DATASETS
    dataset_cls = DATASETS.get(spec)
    if dataset_cls is not None and \
            (getattr(dataset_cls, 'METAINFO', None) or {}).get('classes'):
        return Vocabulary.from_metainfo(dataset_cls.METAINFO)
    raise BenchmarkError(
        f'Unknown vocabulary {spec!r}: give a benchmark name '
        f'({", ".join(BENCHMARK_NAMES)}), a registered dataset type '
        f'(e.g. ADE20K847Dataset) or a text file with one class per line.')


def synthetic_vocabulary(num_classes: int):
    """``num_classes`` made-up class names (``'synthetic class 0'``, ...)."""
    from mmovss.vocab import Vocabulary
    if num_classes < 1:
        raise BenchmarkError(f'--num-classes must be >= 1, got {num_classes}.')
    return Vocabulary([f'synthetic class {i}' for i in range(num_classes)],
                      source=f'{num_classes} synthetic names')


def unique_benchmark_classes(key: str) -> List[str]:
    """The classes of a benchmark key with every name made unique.

    A name that an earlier class already uses (ADE-847 lists ``'pot'``
    twice) becomes ``'<name> (<class index>)'``, so that a vocabulary can
    be built from the list.

    Args:
        key: A key of :data:`mmovss.vocab.benchmarks.BENCHMARK_NAMES`.

    Returns:
        list[str]: One comma-separated synonym line per class.
    """
    from mmovss.vocab import load_benchmark_classes
    classes = list(load_benchmark_classes(key))
    seen = set()
    for i, line in enumerate(classes):
        names = [n.strip() for n in line.split(',')]
        names = [n if n not in seen else f'{n} ({i})' for n in names]
        seen.update(names)
        classes[i] = ', '.join(names)
    return classes
