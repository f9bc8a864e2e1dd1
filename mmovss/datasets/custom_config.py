"""Writes the config of a custom dataset (and of a method trained on it).

Used by ``tools/dataset_converters/custom_dataset.py``; see
``docs/custom_dataset.md``. Two folder layouts are read:

* MMSeg's: ``<root>/<img_dir>/<split>/NAME.jpg`` and
  ``<root>/<ann_dir>/<split>/NAME.png`` for a train and a val split;
* flat: ``<root>/<img_dir>/NAME.jpg`` and ``<root>/<ann_dir>/NAME.png``; a
  seeded random ``val_fraction`` of the pairs becomes the val split, written
  (with the configs, after the data check) as the split files
  ``<root>/<split_dir>/{train,val}.txt`` (mmseg's ``ann_file``;
  ``splits/<name>`` from the tool, so datasets split with other seeds keep
  their own files; an existing split file that differs is never replaced
  without ``overwrite``).

The dataset config defines ``train_dataloader`` (seen classes only),
``val_dataloader``/``test_dataloader`` (all classes) and the
``OpenVocabIoUMetric`` evaluators with the unseen classes, so
``tools/test.py`` reports mIoU over seen and unseen classes and hIoU. With a
method config, a second file inherits that method and swaps in the dataset
(its pipelines are the method's, with mmovss' label loader) and resets what
the method config ties to its own dataset (:func:`custom_model_delta`: the
vocabulary, the seen-class list of FC-CLIP / ZegFormer / OVSeg, the
background threshold of the training-free protocols, and the ignore index of
the loss, the label padding and the metric).
"""
import copy
import datetime
import os
import os.path as osp
import pprint
import random
import warnings
from collections import Counter
from typing import List, Optional, Sequence, Tuple

from .custom import ClassList, DataCheck, check_custom_dataset, find_pairs

__all__ = ['find_layout', 'DatasetLayout', 'default_pipelines', 'method_pipelines',
           'dataset_config_text', 'write_custom_configs', 'write_split_files',
           'check_ignore_index', 'custom_model_delta', 'split_presence_problems']

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


def _label_suffix_guess(img_dir: str, ann_dir: str) -> Optional[str]:
    """The ending most label stems have after an image's stem (``'_mask'``
    for ``a.jpg`` + ``a_mask.png``), or None."""
    from .custom import IMAGE_SUFFIXES, LABEL_SUFFIXES, _files
    if not (osp.isdir(img_dir) and osp.isdir(ann_dir)):
        return None
    images = set(_files(img_dir, IMAGE_SUFFIXES))
    endings = Counter()
    for stem in _files(ann_dir, LABEL_SUFFIXES):
        for cut in range(len(stem) - 1, 0, -1):  # the longest image stem it starts with
            if stem[:cut] in images:
                endings[stem[cut:]] += 1
                break
    if not endings:
        return None
    ending, count = endings.most_common(1)[0]
    return ending if count * 2 >= len(images) else None


def _no_pair_hints(img_dir: str, ann_dir: str, check: DataCheck) -> str:
    """Why no pair was found: the unpaired files, label files of an image
    format, label files named after their image with an ending."""
    from .custom import IMAGE_SUFFIXES, LABEL_SUFFIXES
    hints = []
    ending = _label_suffix_guess(img_dir, ann_dir)
    if ending:
        hints.append(f'the label files are named after their image with {ending!r} added '
                     f'(NAME{ending}.png for NAME.jpg): pass --label-suffix {ending}')
    lossy = sorted(n for n in (os.listdir(ann_dir) if osp.isdir(ann_dir) else [])
                   if osp.splitext(n)[1].lower() in set(IMAGE_SUFFIXES) - set(LABEL_SUFFIXES))
    if lossy:
        hints.append(f'{len(lossy)} file(s) in {ann_dir!r} are not label files '
                     f'({", ".join(lossy[:3])}): labels are PNG or TIFF index maps (JPEG '
                     f'changes the values); save them as PNG')
    if check.errors:
        hints.append('unpaired files:\n' + check.report(limit=5))
    return ('\n' + '\n'.join(hints)) if hints else ''


def find_layout(root: str, check: DataCheck, img_dir: Optional[str] = None,
                ann_dir: Optional[str] = None, train_split: str = 'train',
                val_split: str = 'val', val_fraction: float = 0.2,
                seed: int = 0, split_dir: str = 'splits',
                label_suffix: str = '') -> DatasetLayout:
    """Finds the image/label pairs of both splits (see the module doc).

    ``label_suffix`` is the ending of a label file's name after its image's
    (``'_mask'`` for ``NAME.jpg`` + ``NAME_mask.png``; it becomes part of
    the configs' ``seg_map_suffix``).

    Unpaired files are reported to ``check``. Nothing is written: the flat
    layout's split files (``<root>/<split_dir>/{train,val}.txt``, their
    lines in ``splits[key]['lines']``) are written by
    :func:`write_split_files` once the data check has passed.
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
            pairs = find_pairs(osp.join(root, img), osp.join(root, ann), check,
                               seg_map_suffix=label_suffix,
                               split_file=False)  # no split file: outer spaces are fine
            splits[key] = dict(img_path=img, seg_map_path=ann, ann_file='', pairs=pairs)
    else:
        pairs = find_pairs(osp.join(root, img_dir), osp.join(root, ann_dir), check,
                           seg_map_suffix=label_suffix)
        if not 0 < val_fraction < 1:
            raise ValueError(f'--val-fraction must be in (0, 1), got {val_fraction}.')
        order = list(range(len(pairs)))
        random.Random(seed).shuffle(order)
        num_val = max(1, round(val_fraction * len(pairs))) if len(pairs) > 1 else 0
        chosen = {'val': sorted(order[:num_val]), 'train': sorted(order[num_val:])}
        for key in ('train', 'val'):
            names = [osp.splitext(osp.relpath(pairs[i][0], osp.join(root, img_dir)))[0]
                     for i in chosen[key]]
            splits[key] = dict(img_path=img_dir, seg_map_path=ann_dir,
                               ann_file=osp.join(split_dir, f'{key}.txt'),
                               pairs=[pairs[i] for i in chosen[key]],
                               lines=''.join(n + '\n' for n in names))
    all_pairs = splits['train']['pairs'] + splits['val']['pairs']
    for key in ('train', 'val'):
        if not splits[key]['pairs']:
            raise ValueError(f'The {key} split of {root!r} has no image/label pair '
                             f'(pairs share a file name: img/NAME.jpg + ann/NAME.png).'
                             + _no_pair_hints(osp.join(root, splits[key]['img_path']),
                                              osp.join(root, splits[key]['seg_map_path']),
                                              check))
    return DatasetLayout(root, splits, _suffixes(all_pairs, 0),
                         label_suffix + _suffixes(all_pairs, 1))


def default_pipelines() -> Tuple[list, list]:
    """Train and test pipelines for images of one size (no resizing)."""
    train = [dict(type='LoadImageFromFile'), dict(type='LoadSegAnnotations'),
             dict(type='RandomFlip', prob=0.5), dict(type='PackSegInputs')]
    test = [dict(type='LoadImageFromFile'), dict(type='LoadSegAnnotations'),
            dict(type='PackSegInputs')]
    return train, test


#: Pipeline steps whose label fill value must be the dataset's ignore index.
_LABEL_FILL_KEYS = ('ignore_index', 'seg_pad_val')
_CROPS = ('RandomCrop', 'mmseg.RandomCrop')


def _with_label_loader(pipeline, ignore_index: int = 255) -> list:
    pipeline = copy.deepcopy(list(pipeline))
    for step in pipeline:
        if step.get('type') in ('LoadAnnotations', 'mmseg.LoadAnnotations'):
            step['type'] = 'LoadSegAnnotations'
            step.pop('reduce_zero_label', None)
        for key in _LABEL_FILL_KEYS:  # crops' cat_max_ratio, padding, rotation fill
            if key in step:
                step[key] = ignore_index
        if step.get('type') in _CROPS and 'ignore_index' not in step and ignore_index != 255:
            step['ignore_index'] = ignore_index
    return pipeline


def method_pipelines(method_cfg, ignore_index: int = 255) -> Tuple[list, list]:
    """A method config's train/test pipelines, loading labels with mmovss'
    ``LoadSegAnnotations`` (8/16-bit, value checks naming the file), label
    fill values (``ignore_index``, ``seg_pad_val`` of crops, pads and
    rotations) set to the dataset's ``ignore_index``."""
    default_train, default_test = default_pipelines()
    train = ((method_cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline')
    test = ((method_cfg.get('test_dataloader') or {}).get('dataset') or {}).get('pipeline')
    return (_with_label_loader(train, ignore_index) if train else default_train,
            _with_label_loader(test, ignore_index) if test else default_test)


def check_ignore_index(ignore_index: int, classes: ClassList) -> None:
    """Refuses an ignore index that is a class's label value or no label value.

    Raises:
        ValueError: Naming the class and the fix.
    """
    if not 0 <= ignore_index <= 65535:
        raise ValueError(f'--ignore-index {ignore_index} cannot be stored in an 8- or '
                         f'16-bit label file; use 255 (or 65535 above 255 classes).')
    if ignore_index < len(classes.classes):
        raise ValueError(
            f'--ignore-index {ignore_index} is the label value of the class '
            f'{classes.classes[ignore_index]!r} (entry {ignore_index + 1} of the class '
            f'file): its pixels would be both a class and unlabelled. Remove that class '
            f'from the class file if its pixels are unlabelled (and store them as '
            f'{255 if len(classes.classes) < 255 else 65535}), or choose an ignore index above '
            f'{len(classes.classes) - 1}.')


_VOCAB_HOOK = 'DatasetVocabularyHook'


def _names_a_background(classes: ClassList, index) -> bool:
    from mmovss.vocab import is_background_name
    if index is None or not 0 <= index < len(classes.classes):
        return False
    return is_background_name(classes.classes[index].split(',')[0])


def custom_model_delta(method_cfg, classes: ClassList, ignore_index: int,
                       with_train: bool) -> Tuple[dict, Optional[list]]:
    """What a method config ties to its own dataset, reset for a custom one.

    * ``model.vocabulary`` set to a list or a benchmark's names becomes None
      (the vocabulary follows the dataset; a ``DatasetVocabularyHook`` is
      added to ``custom_hooks``);
    * ``decode_head.seen_vocabulary`` (FC-CLIP, ZegFormer, OVSeg: which
      classes get the in-vocabulary weights) becomes the seen classes;
    * ``decode_head.prob_thd`` > 0 (the training-free protocols' threshold
      sending low-confidence pixels to the benchmark's background class 0)
      becomes 0 unless the custom class at ``background_index`` is named as
      a background (``background``, ``other``, ...; the inferencer's rule);
    * trained methods: ``decode_head.ignore_index`` (the loss) and
      ``data_preprocessor.seg_pad_val`` (label padding) become the dataset's
      ``ignore_index``.

    Returns:
        tuple: The ``model`` delta (merged over the method's) and the new
        ``custom_hooks`` list (None: unchanged).
    """
    model = method_cfg.get('model') or {}
    delta, hooks = {}, None
    if model.get('vocabulary', None) is not None:
        delta['vocabulary'] = None
        current = list(method_cfg.get('custom_hooks') or [])
        if not any(isinstance(h, dict) and h.get('type') == _VOCAB_HOOK for h in current):
            hooks = [dict(h) for h in current] + [dict(type=_VOCAB_HOOK)]
    head = model.get('decode_head') or {}
    head_delta = {}
    if isinstance(head, dict):
        if head.get('seen_vocabulary', None) is not None:
            head_delta['seen_vocabulary'] = list(classes.seen)
        if (head.get('prob_thd', 0) or 0) > 0 and not _names_a_background(
                classes, head.get('background_index', 0)):
            head_delta['prob_thd'] = 0.0
        if with_train:
            head_delta['ignore_index'] = ignore_index
    if head_delta:
        delta['decode_head'] = head_delta
    if with_train and isinstance(model.get('data_preprocessor'), dict):
        delta['data_preprocessor'] = dict(seg_pad_val=ignore_index)
    return delta, hooks


def _dataset_dict(layout: DatasetLayout, split: str, seen_only: bool, ignore_index: int,
                  pipeline_name: str, replace: bool = False) -> str:
    info = layout.splits[split]
    fields = dict(_delete_=True) if replace else {}
    fields.update(type='OpenVocabCustomDataset', data_root=None, classes=None,
                  unseen_classes=None, seen_only=seen_only, ignore_index=None,
                  img_suffix=layout.img_suffix, seg_map_suffix=layout.seg_map_suffix,
                  data_prefix=dict(img_path=info['img_path'],
                                   seg_map_path=info['seg_map_path']),
                  ann_file=info['ann_file'], pipeline=None)
    return _as_dict_call(fields, pipeline_name)


def _as_dict_call(fields: dict, pipeline_name: str) -> str:
    refs = dict(data_root='data_root', classes='classes', unseen_classes='unseen_classes',
                ignore_index='ignore_index', pipeline=pipeline_name)
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
        f'ignore_index = {ignore_index}  # unlabelled pixels (loss, label padding and metric)',
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
        # no unseen class: plain mIoU (the metric refuses an empty list)
        '                     unseen_classes='
        + ('unseen_classes' if classes.unseen else 'None') + ', ignore_index=ignore_index)',
        'test_evaluator = val_evaluator',
    ]
    return '\n'.join(lines) + '\n'


def write_split_files(layout: DatasetLayout, overwrite: bool = False) -> List[str]:
    """Writes the flat layout's split files (``splits[key]['lines']``).

    A split file that exists with the same lines is left as it is; one with
    other lines (another seed or fraction, which configs written then still
    read: replacing it would move their training images into validation) is
    replaced only with ``overwrite``.

    Returns:
        list[str]: The split files written.

    Raises:
        FileExistsError: A split file with other lines exists.
    """
    planned = {}
    for key in ('train', 'val'):
        info = layout.splits[key]
        if 'lines' not in info:
            continue
        path = osp.join(layout.root, info['ann_file'])
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                if f.read() == info['lines']:
                    continue
            if not overwrite:
                raise FileExistsError(
                    f'The split file {path!r} exists with another split (another --seed or '
                    f'--val-fraction; configs written with it read it). Pass another --name '
                    f'(split files go to splits/<name>/), or --overwrite to replace it.')
        planned[path] = info['lines']
    for path, lines in planned.items():
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(lines)
    return list(planned)


def write_custom_configs(name: str, layout: DatasetLayout, classes: ClassList,
                         out_dir: str, ignore_index: int = 255,
                         methods: Sequence[str] = (), overwrite: bool = False) -> List[str]:
    """Writes ``<out_dir>/<name>.py``, one ``<name>_<method>.py`` per method
    and the flat layout's split files (:func:`write_split_files`).

    A config that exists with the same content (its date line aside) is left
    as it is; with ``methods``, an existing dataset config that differs
    (edited) is kept too, with a warning (no method config reads it).

    Returns:
        list[str]: The written files.

    Raises:
        FileExistsError: A config exists with other content, or a split file
            with other lines, and ``overwrite`` is False (nothing is written
            then).
        ValueError: ``ignore_index`` is a class's label value.
    """
    from mmengine.config import Config
    check_ignore_index(ignore_index, classes)
    files = {osp.join(out_dir, f'{name}.py'): dataset_config_text(
        name, layout, classes, ignore_index, default_pipelines())}
    for method in methods:
        if not osp.isfile(method):
            raise FileNotFoundError(f'Method config {method!r} does not exist.')
        method_cfg = Config.fromfile(method)
        with_train = method_cfg.get('train_dataloader') is not None
        train_ds = (method_cfg.get('train_dataloader') or {}).get('dataset') or {}
        if train_ds.get('type') in ('ConcatDataset', 'mmengine.ConcatDataset'):
            raise ValueError(
                f'{method} trains on several sources at once ({train_ds.get("type")}, e.g. '
                f'OpenSeg: segmentation and captions); a custom dataset gives one. Train it '
                f'with its own config (replacing its segmentation source by hand), or pick a '
                f'method trained on segmentation alone.')
        stem = osp.splitext(osp.basename(method))[0]
        path = osp.join(out_dir, f'{name}_{stem}.py')
        base = osp.relpath(osp.abspath(method), osp.abspath(out_dir))
        header = (f'# {stem} on the custom dataset {name!r}'
                  + (' (trained on its seen classes).' if with_train else ' (training-free).')
                  + f'\n_base_ = [{base!r}]\n')
        text = header + dataset_config_text(
            name, layout, classes, ignore_index, method_pipelines(method_cfg, ignore_index),
            replace=True, with_train=with_train, source=f' --method {method}')
        delta, hooks = custom_model_delta(method_cfg, classes, ignore_index, with_train)
        if delta:
            text += ('# what the method config ties to its own dataset, set for this one\n'
                     'model = ' + pprint.pformat(delta, width=90, sort_dicts=False) + '\n')
        if hooks is not None:
            text += 'custom_hooks = ' + pprint.pformat(hooks, width=90, sort_dicts=False) + '\n'
        files[path] = text
    # a config that exists with the same content (its date line aside) is kept as it
    # is, so that adding a --method never rewrites the others (which may be edited)
    files = {p: t for p, t in files.items() if not _same_config(p, t)}
    dataset_config = osp.join(out_dir, f'{name}.py')
    if methods and dataset_config in files and osp.exists(dataset_config) and not overwrite:
        # adding a method: the dataset config (which no method config reads) stays
        # as the user left it
        warnings.warn(f'{dataset_config} is kept as it is (it differs from what this run '
                      f'would write: edited, or other data); pass --overwrite to replace it.')
        del files[dataset_config]
    existing = [p for p in files if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'{", ".join(existing)} already exist with other content (edited, '
                              f'or written for other data or classes); pass --overwrite to '
                              f'replace them, or another --name.')
    split_files = write_split_files(layout, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    for path, text in files.items():
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
    return split_files + list(files)


def _same_config(path: str, text: str) -> bool:
    """``path`` holds ``text`` but for the ``# Written by ... on DATE`` line."""
    if not osp.isfile(path):
        return False
    with open(path, encoding='utf-8') as f:
        old = f.read()

    def body(t):
        return [ln for ln in t.splitlines() if not ln.startswith('# Written by ')]
    return body(old) == body(text)


def check_layout(layout: DatasetLayout, classes: ClassList, ignore_index: int,
                 check: DataCheck) -> DataCheck:
    """Runs :func:`check_custom_dataset` over both splits.

    ``check.pixels`` counts both splits; each split's own counts go to
    ``layout.splits[key]['pixels']`` (read by :func:`split_presence_problems`).
    """
    for key in ('train', 'val'):
        part = check_custom_dataset(layout.splits[key]['pairs'], len(classes.classes),
                                    ignore_index, DataCheck())
        layout.splits[key]['pixels'] = part.pixels
        check.pairs += part.pairs
        check.label_bits |= part.label_bits
        for kind, messages in part.errors.items():
            for message in messages:
                check.add(kind, message)
        check.pixels = part.pixels.copy() if check.pixels is None else check.pixels + part.pixels
    return check


def split_presence_problems(layout: DatasetLayout, classes: ClassList) -> Tuple[list, list]:
    """Classes missing from the split that needs them (after :func:`check_layout`).

    Returns:
        tuple[list[str], list[str]]: Errors (no seen class in the training
        split: nothing to learn; no unseen class in the val split: the
        unseen mIoU and hIoU cannot be measured) and notes (seen classes
        the training split lacks; unseen classes the val split lacks).
    """
    display = [c.split(',')[0].strip() for c in classes.classes]
    unseen = set(classes.unseen)
    train, val = (layout.splits[k].get('pixels') for k in ('train', 'val'))
    errors, notes = [], []
    if train is not None:
        seen_missing = [n for n, p in zip(display, train) if n not in unseen and p == 0]
        if len(seen_missing) == len(display) - len(unseen):
            errors.append('the train split has no pixel of any seen class: training would '
                          'learn nothing (its labels are all unseen or unlabelled). Move '
                          'images of seen classes into it, or mark fewer classes unseen.')
        elif seen_missing:
            notes.append(f'no train pixel of {len(seen_missing)} seen class(es), never trained '
                         f'on: {", ".join(seen_missing[:10])}')
    if val is not None and unseen:
        unseen_missing = [n for n, p in zip(display, val) if n in unseen and p == 0]
        if len(unseen_missing) == len(unseen):
            errors.append(f'the val split has no pixel of any unseen class '
                          f'({", ".join(classes.unseen[:10])}): mIoU over unseen classes and '
                          f'hIoU cannot be measured. Move images with them into the val '
                          f'split, or mark other classes unseen.')
        elif unseen_missing:
            notes.append(f'no val pixel of {len(unseen_missing)} unseen class(es) (IoU 0 where '
                         f'predicted, else not counted): {", ".join(unseen_missing[:10])}')
    return errors, notes
