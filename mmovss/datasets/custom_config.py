"""Writes the config of a custom dataset (and of a method trained on it).

Used by ``tools/dataset_converters/custom_dataset.py``; see
``docs/custom_dataset.md``. Two folder layouts are read:

* MMSeg's: ``<root>/<img_dir>/<split>/NAME.jpg`` and
  ``<root>/<ann_dir>/<split>/NAME.png`` for a train and a val split;
* flat: ``<root>/<img_dir>/NAME.jpg`` and ``<root>/<ann_dir>/NAME.png``; a
  seeded random ``val_fraction`` of the pairs becomes the val split, written
  as the split files ``<root>/splits/{train,val}.txt`` (mmseg's
  ``ann_file``).

The dataset config defines ``train_dataloader`` (seen classes only),
``val_dataloader``/``test_dataloader`` (all classes) and the
``OpenVocabIoUMetric`` evaluators with the unseen classes, so
``tools/test.py`` reports mIoU over seen and unseen classes and hIoU. With a
method config, a second file inherits that method and swaps in the dataset
(its pipelines are the method's, with mmovss' label loader).
"""
import copy
import datetime
import os
import os.path as osp
import pprint
import random
from collections import Counter
from typing import List, Optional, Sequence, Tuple

from .custom import ClassList, DataCheck, check_custom_dataset, find_pairs

__all__ = ['find_layout', 'DatasetLayout', 'default_pipelines', 'method_pipelines',
           'dataset_config_text', 'write_custom_configs']

_IMG_DIRS = ('img_dir', 'images', 'imgs', 'JPEGImages')
_ANN_DIRS = ('ann_dir', 'labels', 'annotations', 'masks', 'SegmentationClass')


class DatasetLayout:
    """Where the splits of a custom dataset are.

    Attributes:
        root (str): ``data_root``.
        splits (dict): ``'train'``/``'val'`` -> dict(img_path, seg_map_path
            relative to root, ann_file relative to root or '', pairs).
        img_suffix (str), seg_map_suffix (str): File endings.
    """

    def __init__(self, root: str, splits: dict, img_suffix: str, seg_map_suffix: str):
        self.root, self.splits = root, splits
        self.img_suffix, self.seg_map_suffix = img_suffix, seg_map_suffix


def _pick(root: str, given: Optional[str], candidates: Sequence[str], what: str) -> str:
    if given is not None:
        if not osp.isdir(osp.join(root, given)):
            raise FileNotFoundError(f'The {what} folder {osp.join(root, given)!r} does not exist.')
        return given
    for name in candidates:
        if osp.isdir(osp.join(root, name)):
            return name
    raise FileNotFoundError(f'No {what} folder under {root!r} (looked for '
                            f'{", ".join(candidates)}); pass --{what}-dir.')


def _suffixes(pairs: List[Tuple[str, str]], what: int) -> str:
    counts = Counter(osp.splitext(p[what])[1] for p in pairs)
    if len(counts) > 1:
        raise ValueError(f'The {"images" if what == 0 else "label files"} have several '
                         f'file endings {dict(counts)}; MMSegmentation reads one per dataset. '
                         f'Convert them to one format first.')
    return next(iter(counts))


def find_layout(root: str, check: DataCheck, img_dir: Optional[str] = None,
                ann_dir: Optional[str] = None, train_split: str = 'train',
                val_split: str = 'val', val_fraction: float = 0.2,
                seed: int = 0) -> DatasetLayout:
    """Finds the image/label pairs of both splits (see the module doc).

    Unpaired files are reported to ``check``. The flat layout's split files
    are written under ``<root>/splits/``.
    """
    if not osp.isdir(root):
        raise FileNotFoundError(f'Dataset folder {root!r} does not exist.')
    img_dir = _pick(root, img_dir, _IMG_DIRS, 'img')
    ann_dir = _pick(root, ann_dir, _ANN_DIRS, 'ann')
    splits = {}
    if osp.isdir(osp.join(root, img_dir, train_split)):
        for key, split in (('train', train_split), ('val', val_split)):
            img, ann = osp.join(img_dir, split), osp.join(ann_dir, split)
            if not osp.isdir(osp.join(root, img)):
                raise FileNotFoundError(
                    f'{osp.join(root, img)!r} does not exist: the MMSeg layout needs a '
                    f'{split} split (or put all pairs in {img_dir}/ and {ann_dir}/ directly '
                    f'and let --val-fraction split them).')
            pairs = find_pairs(osp.join(root, img), osp.join(root, ann), check)
            splits[key] = dict(img_path=img, seg_map_path=ann, ann_file='', pairs=pairs)
    else:
        pairs = find_pairs(osp.join(root, img_dir), osp.join(root, ann_dir), check)
        if not 0 < val_fraction < 1:
            raise ValueError(f'--val-fraction must be in (0, 1), got {val_fraction}.')
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        num_val = max(1, round(val_fraction * len(pairs))) if len(pairs) > 1 else 0
        chosen = {'val': sorted(order[:num_val]), 'train': sorted(order[num_val:])}
        os.makedirs(osp.join(root, 'splits'), exist_ok=True)
        for key in ('train', 'val'):
            names = [osp.splitext(osp.relpath(pairs[i][0], osp.join(root, img_dir)))[0]
                     for i in chosen[key]]
            split_file = osp.join('splits', f'{key}.txt')
            with open(osp.join(root, split_file), 'w', encoding='utf-8') as f:
                f.write(''.join(n + '\n' for n in names))
            splits[key] = dict(img_path=img_dir, seg_map_path=ann_dir, ann_file=split_file,
                               pairs=[pairs[i] for i in chosen[key]])
    all_pairs = splits['train']['pairs'] + splits['val']['pairs']
    for key in ('train', 'val'):
        if not splits[key]['pairs']:
            raise ValueError(f'The {key} split of {root!r} has no image/label pair.')
    return DatasetLayout(root, splits, _suffixes(all_pairs, 0), _suffixes(all_pairs, 1))


def default_pipelines() -> Tuple[list, list]:
    """Train and test pipelines for images of one size (no resizing)."""
    train = [dict(type='LoadImageFromFile'), dict(type='LoadSegAnnotations'),
             dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
    test = [dict(type='LoadImageFromFile'), dict(type='LoadSegAnnotations'),
            dict(type='PackSegInputs')]
    return train, test


def _with_label_loader(pipeline) -> list:
    pipeline = copy.deepcopy(list(pipeline))
    for step in pipeline:
        if step.get('type') in ('LoadAnnotations', 'mmseg.LoadAnnotations'):
            step['type'] = 'LoadSegAnnotations'
            step.pop('reduce_zero_label', None)
    return pipeline


def method_pipelines(method_cfg) -> Tuple[list, list]:
    """A method config's train/test pipelines, loading labels with mmovss'
    ``LoadSegAnnotations`` (8/16-bit, value checks naming the file)."""
    default_train, default_test = default_pipelines()
    train = ((method_cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline')
    test = ((method_cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline')
    return (_with_label_loader(train) if train else default_train,
            _with_label_loader(test) if test else default_test)


def _dataset_dict(layout: DatasetLayout, split: str, seen_only: bool, ignore_index: int,
                  pipeline_name: str, replace: bool = False) -> str:
    info = layout.splits[split]
    fields = dict(_delete_=True) if replace else {}
    fields.update(type='OpenVocabCustomDataset', data_root=None, classes=None,
                  unseen_classes=None, seen_only=seen_only, ignore_index=ignore_index,
                  img_suffix=layout.img_suffix, seg_map_suffix=layout.seg_map_suffix,
                  data_prefix=dict(img_path=info['img_path'],
                                   seg_map_path=info['seg_map_path']),
                  ann_file=info['ann_file'], pipeline=None)
    return _as_dict_call(fields, pipeline_name)


def _as_dict_call(fields: dict, pipeline_name: str) -> str:
    refs = dict(data_root='data_root', classes='classes', unseen_classes='unseen_classes',
                pipeline=pipeline_name)
    parts = []
    for key, value in fields.items():
        if key in refs:
            parts.append(f'{key}={refs[key]}')
        elif isinstance(value, dict):
            inner = ', '.join(f'{k}={v!r}' for k, v in value.items())
            parts.append(f'{key}=dict({inner})')
        else:
            parts.append(f'{key}={value!r}')
    return 'dict(\n        ' + ',\n        '.join(parts) + ')'


def dataset_config_text(name: str, layout: DatasetLayout, classes: ClassList,
                        ignore_index: int, pipelines: Tuple[list, list],
                        replace: bool = False, with_train: bool = True,
                        source: str = '') -> str:
    """The Python text of the dataset part of a config.

    Args:
        replace (bool): Add ``_delete_=True`` so that the text overrides a
            base config's datasets and evaluators (method + data configs).
        with_train (bool): Define the training loader (not for
            training-free methods).
    """
    delete = '_delete_=True, ' if replace else ''
    train_ds = _dataset_dict(layout, 'train', True, ignore_index, 'train_pipeline', replace)
    val_ds = _dataset_dict(layout, 'val', False, ignore_index, 'test_pipeline', replace)
    lines = [
        f'# Dataset {name!r}: {len(classes.classes)} classes, {len(classes.unseen)} of them '
        f'unseen in training.',
        f'# {len(layout.splits["train"]["pairs"])} train / {len(layout.splits["val"]["pairs"])} '
        f'val pairs under {layout.root}.',
        f'# Written by tools/dataset_converters/custom_dataset.py{source} on '
        f'{datetime.date.today().isoformat()}.',
        f'data_root = {osp.abspath(layout.root)!r}',
        'classes = ' + pprint.pformat(list(classes.classes), width=90, compact=True),
        'unseen_classes = ' + pprint.pformat(list(classes.unseen), width=90, compact=True),
        'train_pipeline = ' + pprint.pformat(pipelines[0], width=90, sort_dicts=False),
        'test_pipeline = ' + pprint.pformat(pipelines[1], width=90, sort_dicts=False),
    ]
    if with_train:
        if replace:
            lines.append(f'train_dataloader = dict(\n    dataset={train_ds})')
        else:
            lines.append('train_dataloader = dict(\n    batch_size=8,\n    num_workers=2,\n'
                         '    persistent_workers=True,\n'
                         "    sampler=dict(type='InfiniteSampler', shuffle=True),\n"
                         f'    dataset={train_ds})')
    if replace:
        lines.append(f'val_dataloader = dict(\n    dataset={val_ds})')
    else:
        lines.append('val_dataloader = dict(\n    batch_size=1,\n    num_workers=2,\n'
                     '    persistent_workers=True,\n'
                     "    sampler=dict(type='DefaultSampler', shuffle=False),\n"
                     f'    dataset={val_ds})')
    lines += [
        'test_dataloader = val_dataloader',
        f"val_evaluator = dict({delete}type='OpenVocabIoUMetric', iou_metrics=['mIoU'],\n"
        '                     unseen_classes=unseen_classes)',
        'test_evaluator = val_evaluator',
    ]
    return '\n'.join(lines) + '\n'


def write_custom_configs(name: str, layout: DatasetLayout, classes: ClassList,
                         out_dir: str, ignore_index: int = 255,
                         methods: Sequence[str] = (), overwrite: bool = False) -> List[str]:
    """Writes ``<out_dir>/<name>.py`` and one ``<name>_<method>.py`` per method.

    Returns:
        list[str]: The written config files.

    Raises:
        FileExistsError: A config exists and ``overwrite`` is False.
    """
    from mmengine.config import Config
    os.makedirs(out_dir, exist_ok=True)
    files = {osp.join(out_dir, f'{name}.py'): dataset_config_text(
        name, layout, classes, ignore_index, default_pipelines())}
    for method in methods:
        if not osp.isfile(method):
            raise FileNotFoundError(f'Method config {method!r} does not exist.')
        method_cfg = Config.fromfile(method)
        with_train = method_cfg.get('train_dataloader') is not None
        stem = osp.splitext(osp.basename(method))[0]
        path = osp.join(out_dir, f'{name}_{stem}.py')
        base = osp.relpath(osp.abspath(method), osp.abspath(out_dir))
        header = (f'# {stem} on the custom dataset {name!r}'
                  + (' (trained on its seen classes).' if with_train else ' (training-free).')
                  + f'\n_base_ = [{base!r}]\n')
        files[path] = header + dataset_config_text(
            name, layout, classes, ignore_index, method_pipelines(method_cfg),
            replace=True, with_train=with_train, source=f' --method {method}')
    existing = [p for p in files if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'{", ".join(existing)} already exist; pass --overwrite or '
                              f'another --name.')
    for path, text in files.items():
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
    return list(files)


def check_layout(layout: DatasetLayout, classes: ClassList, ignore_index: int,
                 check: DataCheck) -> DataCheck:
    """Runs :func:`check_custom_dataset` over both splits."""
    for key in ('train', 'val'):
        check_custom_dataset(layout.splits[key]['pairs'], len(classes.classes),
                             ignore_index, check)
    return check
