"""Class-name vocabularies of the open-vocabulary segmentation benchmarks.

Each benchmark's vocabulary is stored once, as a text file
``mmovss/vocab/names/<key>.txt``: one class per line, in label order (line
``i`` names label value ``i`` of the prepared annotation files), with the
synonyms of a class separated by commas (``"wall, walls, brick wall"``).
Dataset METAINFO ``classes`` and the text encoder both read these files.

Where the lists come from (data copied, normalised to ``", "`` separators
with duplicate synonyms dropped):

* ``ade20k_150``, ``ade20k_847``, ``pascal_context_459``,
  ``pascal_context_59``, ``coco_stuff171``, ``cityscapes``, ``voc20`` and the
  foreground classes of ``voc21`` / ``pascal_context_60`` / ``coco_object``:
  the prompt-engineered lists ``fcclip/data/datasets/*_with_prompt_eng.txt``
  of FC-CLIP (github.com/bytedance/fc-clip, commit 2b0bbe21), which FC-CLIP
  took from ODISE (github.com/NVlabs/ODISE); lines marked
  ``invalid_class_id`` (unused COCO ids, index 0) are left out. ``coco_object``
  uses the 80 thing classes (COCO ids 1-90) of the COCO-Stuff list.
* Background of ``voc21`` and ``coco_object``: the background words of the
  training-free literature, ``configs/cls_voc21.txt`` /
  ``configs/cls_coco_object.txt`` of SCLIP (github.com/wangf3014/SCLIP, commit
  b56bd301), also used by ClearCLIP and NACLIP.
* Background of ``pascal_context_60``: the single word ``background``, as in
  SCLIP's / NACLIP's ``configs/cls_context60.txt``.
* ``voc20b`` (PAS-20b, VOC-21's data): background named by the 39 names that
  CAT-Seg's ``datasets/voc20b.json`` (github.com/KU-CVLAB/CAT-Seg, commit
  6d3a188a) lists after the VOC classes (PASCAL Context classes that are not
  VOC classes, ``'bag'`` ... ``'wood'``), as synonyms of class 0, then the
  classes of ``voc20``. ``'plate'`` is also a synonym of ``voc20``'s
  ``diningtable``: both lists are kept as published.
"""
from functools import lru_cache
from importlib import resources
from typing import Tuple

__all__ = ['BENCHMARK_NAMES', 'BENCHMARK_NUM_CLASSES', 'load_benchmark_classes',
           'split_synonyms']

#: Number of classes of each benchmark vocabulary, keyed by benchmark name.
BENCHMARK_NUM_CLASSES = {
    'ade20k_847': 847,
    'ade20k_150': 150,
    'pascal_context_459': 459,
    'pascal_context_59': 59,
    'pascal_context_60': 60,
    'voc20': 20,
    'voc21': 21,
    'voc20b': 21,
    'coco_stuff171': 171,
    'coco_object': 81,
    'cityscapes': 19,
}

#: Keys accepted by :func:`load_benchmark_classes` (= name file stems).
BENCHMARK_NAMES: Tuple[str, ...] = tuple(BENCHMARK_NUM_CLASSES)


@lru_cache(maxsize=None)
def load_benchmark_classes(key: str) -> Tuple[str, ...]:
    """Loads the class names of a benchmark.

    Args:
        key (str): Benchmark name, one of :data:`BENCHMARK_NAMES`
            (for example ``'ade20k_150'``).

    Returns:
        tuple[str, ...]: One entry per class, in label order. Each entry is
        the class's comma-separated synonym string as stored in the name file
        (for example ``'wall, walls, brick wall, stone wall, interior wall'``).

    Raises:
        ValueError: If ``key`` is not a known benchmark, or the name file does
            not hold the expected number of non-empty lines.
    """
    if key not in BENCHMARK_NUM_CLASSES:
        raise ValueError(
            f'Unknown benchmark {key!r}; valid keys are: '
            f'{", ".join(BENCHMARK_NAMES)}.')
    path = resources.files('mmovss.vocab').joinpath('names', f'{key}.txt')
    lines = path.read_text(encoding='utf-8').splitlines()
    classes = tuple(line.strip() for line in lines)
    if any(not c for c in classes) or len(classes) != BENCHMARK_NUM_CLASSES[key]:
        raise ValueError(
            f'Name file {path} must hold {BENCHMARK_NUM_CLASSES[key]} '
            f'non-empty lines (one class each), found {len(classes)} lines '
            f'({sum(not c for c in classes)} empty). Restore it from the '
            'mmovss sources.')
    return classes


def split_synonyms(entry: str) -> Tuple[str, ...]:
    """Splits a class entry into its synonyms.

    Args:
        entry (str): A comma-separated synonym string such as
            ``'sofa, couch, lounge'``.

    Returns:
        tuple[str, ...]: The stripped, non-empty synonyms
        (``('sofa', 'couch', 'lounge')``).
    """
    return tuple(s.strip() for s in entry.split(',') if s.strip())
