"""Your own dataset: a folder of images and label maps plus a class file.

Class file (UTF-8, one class per line, line ``i`` = label value ``i``)::

    # comments and blank lines are skipped
    sky
    grass, lawn            <- synonyms of one class, separated by commas
    striped red | unseen   <- an optional "| unseen" marker: never trained on

Class names are normalised as :class:`~mmovss.vocab.Vocabulary` does
(white space collapsed, Unicode NFC), so ``'café'`` typed with a combining
accent is the same name everywhere.

Label maps are single-channel PNG (or TIFF) files, 8- or 16-bit, whose pixel
values are class indices; ``ignore_index`` (255 by default, 65535 for more
than 255 classes) marks unlabelled pixels. :func:`check_custom_dataset`
lists every problem with file names (missing pairs, size mismatches,
unknown label values, colour, float or 1-bit label files, images with an
EXIF orientation tag, file names a split file cannot hold) before anything
is trained.

:class:`OpenVocabCustomDataset` reads such a folder in MMSeg's layout
(``img_dir/<split>``, ``ann_dir/<split>``) or from split files. With
``seen_only=True`` (the training split) it keeps only the seen classes:
unseen labels become ``ignore_index`` and the vocabulary is the seen names,
which is the open-vocabulary protocol; evaluation uses all classes and
reports mIoU over seen and unseen classes and their harmonic mean.
:mod:`mmovss.datasets.custom_config` writes the config.
"""
import codecs
import io
import os
import os.path as osp
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..vocab import Vocabulary
from .layout import generate_palette

__all__ = ['ClassList', 'read_class_file', 'DataCheck', 'check_custom_dataset',
           'find_pairs', 'OpenVocabCustomDataset', 'IMAGE_SUFFIXES', 'read_utf8_lines']

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
LABEL_SUFFIXES = ('.png', '.tif', '.tiff')
_UNSEEN_MARK = 'unseen'


@dataclass
class ClassList:
    """The classes of a custom dataset.

    Attributes:
        classes (list[str]): One entry per label value, synonyms joined by
            ``', '`` (METAINFO style).
        unseen (list[str]): Display names of the unseen classes.
    """
    classes: List[str]
    unseen: List[str] = field(default_factory=list)

    @property
    def seen(self) -> List[str]:
        unseen = set(self.unseen)
        return [c for c in self.classes if c.split(',')[0].strip() not in unseen]


def _normalise(name: str) -> str:
    """A class name as :class:`~mmovss.vocab.Vocabulary` stores it."""
    return unicodedata.normalize('NFC', ' '.join(name.split()))


def _match_class(name: str, vocabulary: Vocabulary, where: str) -> str:
    key = _normalise(name).lower()
    for names in vocabulary:
        if key in (n.lower() for n in names):
            return names[0]
    raise ValueError(f'{where}: {name!r} is not a class of the class file (classes are '
                     f'matched by any of their names, ignoring case).')


def read_utf8_lines(path: str, what: str = 'Class file') -> List[str]:
    """The lines of a UTF-8 text file (a byte-order mark is skipped); another
    encoding is refused naming ``what``, the file, the line and the fix."""
    with open(path, 'rb') as f:
        data = f.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b'\n') + 1
        raise ValueError(
            f'{what} {path}, line {line}: byte 0x{data[err.start]:02x} is not UTF-8 '
            f'({err.reason}); the file was saved in another encoding (e.g. Latin-1 or '
            f'Windows-1252). Save it as UTF-8 (your editor\'s "save with encoding", or '
            f'iconv -f latin1 -t utf-8 OLD > NEW).') from None
    return list(io.StringIO(text, newline=None))


def read_class_file(path: str, unseen: Sequence[str] = ()) -> ClassList:
    """Reads a class file (module doc) and an optional unseen list.

    Names (and ``unseen``) are normalised as :class:`~mmovss.vocab.Vocabulary`
    normalises them (white space collapsed, Unicode NFC), so the classes and
    unseen names match the dataset's vocabulary.

    Args:
        path (str): The class file (UTF-8).
        unseen (Sequence[str]): More unseen classes (any of their names).

    Raises:
        FileNotFoundError: No such file.
        ValueError: A file that is not UTF-8, an empty file, a bad marker,
            an unknown unseen name, duplicated classes, or every class unseen.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Class file {path!r} does not exist (one class per line, '
                                f'synonyms separated by commas, optional "| unseen").')
    classes, marked = [], []
    for number, line in enumerate(read_utf8_lines(path), 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        text, _, marker = line.partition('|')
        marker = marker.strip().lower()
        if marker not in ('', _UNSEEN_MARK):
            raise ValueError(f'{path}, line {number}: unknown marker {marker!r} after '
                             f'"|"; the only marker is "| unseen".')
        names = [_normalise(n) for n in text.split(',')]
        if not all(names):
            raise ValueError(f'{path}, line {number}: an empty class name in {line!r} '
                             f'(check for a stray comma).')
        classes.append(', '.join(names))
        if marker:
            marked.append(names[0])
    if len(classes) < 2:
        raise ValueError(f'Class file {path!r} names {len(classes)} class(es); a '
                         f'segmentation dataset needs at least two.')
    vocabulary = Vocabulary(classes, source=f'class file {path}')  # checks duplicates
    names = list(marked) + [_match_class(n, vocabulary, '--unseen') for n in unseen]
    unseen_names = list(dict.fromkeys(names))
    if len(unseen_names) >= len(classes):
        raise ValueError(f'Every class of {path!r} is unseen; training needs seen classes.')
    return ClassList(classes, unseen_names)


# ----------------------------------------------------------------- checking
@dataclass
class DataCheck:
    """What :func:`check_custom_dataset` found.

    Attributes:
        pairs (int): Image/label pairs checked.
        errors (dict[str, list[str]]): Problem kind -> messages naming files.
        label_bits (set[int]): Bit depths of the label files (8, 16, 32).
        pixels (np.ndarray): Pixels per class over the checked labels.
    """
    pairs: int = 0
    errors: Dict[str, List[str]] = field(default_factory=dict)
    label_bits: set = field(default_factory=set)
    pixels: Optional[np.ndarray] = None

    def add(self, kind: str, message: str) -> None:
        self.errors.setdefault(kind, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.errors

    def report(self, limit: int = 10) -> str:
        """The problems, ``limit`` messages per kind, as text."""
        lines = []
        for kind, messages in self.errors.items():
            lines.append(f'{kind}: {len(messages)}')
            lines += [f'  {m}' for m in messages[:limit]]
            if len(messages) > limit:
                lines.append(f'  ... and {len(messages) - limit} more')
        return '\n'.join(lines)


def _files(folder: str, suffixes: Sequence[str]) -> Dict[str, str]:
    """Stem (path relative to ``folder`` without suffix) -> file path."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            stem, ext = osp.splitext(name)
            if ext.lower() in suffixes and not name.startswith('.'):
                rel = osp.relpath(osp.join(root, stem), folder)
                found[rel] = osp.join(root, name)
    return found


def _unlistable(stem: str) -> bool:
    """A name that a split file cannot hold: mmseg strips each line of it
    (``line.strip()``) and splits the file at line breaks."""
    return stem != stem.strip() or '\n' in stem or '\r' in stem


def find_pairs(img_dir: str, ann_dir: str, check: Optional[DataCheck] = None,
               seg_map_suffix: str = '', split_file: bool = True) -> List[Tuple[str, str]]:
    """Image/label pairs matched by file name (without suffix).

    A label file may end with ``seg_map_suffix`` (e.g. ``_labelTrainIds``)
    after the image's stem; given one, label files without it are reported
    (the dataset would look for ``NAME<seg_map_suffix>``). Unpaired files
    are reported to ``check``, and
    (``split_file``: the names will be written to a split file, as in the
    flat layout) so are files whose name starts or ends with white space or
    holds a line break: mmseg strips each line of a split file and would
    look for another file. Inner spaces are fine.
    """
    for folder, what in ((img_dir, 'image'), (ann_dir, 'label')):
        if not osp.isdir(folder):
            raise FileNotFoundError(f'The {what} folder {folder!r} does not exist.')
    images = _files(img_dir, IMAGE_SUFFIXES)
    labels, unsuffixed = {}, []
    for stem, path in _files(ann_dir, LABEL_SUFFIXES).items():
        if seg_map_suffix:
            if not stem.endswith(seg_map_suffix):  # the dataset would look for NAME<suffix>
                unsuffixed.append(path)
                continue
            stem = stem[:-len(seg_map_suffix)]
        labels[stem] = path
    if check is not None:
        if split_file:
            for stem in sorted(s for s in set(images) | set(labels) if _unlistable(s)):
                files = ' and '.join(repr(d[stem]) for d in (images, labels) if stem in d)
                check.add('file names with leading or trailing white space',
                          f'{files}: the name {osp.basename(stem)!r} starts or ends with '
                          f'white space (or holds a line break), which mmseg strips from '
                          f'each line of a split file, so the file would not be found; '
                          f'rename it (and its pair) without it')
        for stem in sorted(set(images) - set(labels)):
            check.add('images without a label file', images[stem])
        for stem in sorted(set(labels) - set(images)):
            check.add('label files without an image', labels[stem])
        for path in unsuffixed:
            check.add('label files without the label suffix',
                      f'{path}: its name does not end with {seg_map_suffix!r}; rename it '
                      f'(NAME{seg_map_suffix} + extension) or remove it')
    return [(images[s], labels[s]) for s in sorted(set(images) & set(labels))]


def _label_bits(label: Image.Image, path: str, check: DataCheck) -> Optional[int]:
    """8/16/32 for label files the loader (``LoadSegAnnotations``) reads as
    integer class indices; None (reported to ``check``) otherwise."""
    if label.mode in ('L', 'P'):
        return 8
    if label.mode.startswith('I;16'):
        return 16
    if label.mode == 'I':
        return 32
    if label.mode == 'F':
        check.add('float or 1-bit label files',
                  f'{path} (mode F): the label file holds 32-bit float values, which the '
                  f'label loader refuses; save the class indices as an integer index map '
                  f'(8-bit mode L, or 16-bit for more than 255 classes), e.g. '
                  f'Image.fromarray(np.asarray(label).astype(np.uint8)).save(...)')
        return None
    if label.mode == '1':
        check.add('float or 1-bit label files',
                  f'{path} (mode 1): a 1-bit file is read as True/False, which the label '
                  f'loader refuses; save it as an 8-bit index map (mode L), e.g. '
                  f'Image.fromarray(np.asarray(label, np.uint8)).save(...)')
        return None
    check.add('colour or multi-channel label files',
              f'{path} (mode {label.mode}): a label file must hold one class index per '
              f'pixel; convert colour visualisations to index maps first')
    return None


#: EXIF orientations that image readers undo (2..8; 1 is upright, other
#: values are ignored by cv2 and PIL) and those that swap width and height.
_ORIENTATIONS = {2: 'mirrored', 3: 'rotated 180 degrees', 4: 'flipped upside down',
                 5: 'mirrored and rotated', 6: 'rotated 90 degrees', 7: 'mirrored and rotated',
                 8: 'rotated 270 degrees'}
_TRANSPOSING = (5, 6, 7, 8)


def _png_has_exif(path: str) -> bool:
    """Whether a PNG file has an ``eXIf`` chunk (without decoding it)."""
    with open(path, 'rb') as f:
        f.seek(8)  # the signature
        while True:
            head = f.read(8)
            if len(head) < 8:
                return False
            length, kind = struct.unpack('>I4s', head)
            if kind == b'eXIf':
                return True
            if kind == b'IEND':
                return False
            f.seek(length + 4, io.SEEK_CUR)  # data and CRC


def _orientation(image: Image.Image, path: str) -> Optional[int]:
    """The EXIF orientation tag (0x0112) of an opened image, or None."""
    if image.format == 'PNG' and 'exif' not in image.info \
            and 'Raw profile type exif' not in image.info and not _png_has_exif(path):
        return None  # PIL would decode the whole PNG to look for the chunk
    value = image.getexif().get(0x0112)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def check_custom_dataset(pairs: Sequence[Tuple[str, str]], num_classes: int,
                         ignore_index: int = 255,
                         check: Optional[DataCheck] = None) -> DataCheck:
    """Checks image/label pairs: sizes, label format and label values.

    Reports, each message naming its file: unreadable files; label files
    that are not single-channel integer index maps (colour, float, 1-bit);
    images with an EXIF orientation tag (image loaders turn them upright,
    label loaders do not turn the label); size mismatches; unknown values.

    Args:
        pairs: ``(image, label)`` file paths.
        num_classes (int): Number of classes (valid values ``0..C-1``).
        ignore_index (int): The unlabelled value.
        check (DataCheck, optional): Adds to an existing check.

    Returns:
        DataCheck: Problems by kind, each message naming its file.
    """
    check = check or DataCheck()
    pixels = np.zeros(num_classes, np.int64) if check.pixels is None else check.pixels
    for image_path, label_path in pairs:
        check.pairs += 1
        try:
            with Image.open(image_path) as image:
                image_size = image.size
                orientation = _orientation(image, image_path)
        except Exception as err:  # noqa: BLE001 - any decoder error
            check.add('unreadable images', f'{image_path} ({type(err).__name__}: {err})')
            continue
        sizes = [image_size]  # a label may match the stored or the upright size
        if orientation in _ORIENTATIONS:
            upright = image_size[::-1] if orientation in _TRANSPOSING else image_size
            sizes.append(upright)
            check.add('images with an EXIF orientation tag',
                      f'{image_path} has EXIF orientation {orientation} ('
                      f'{_ORIENTATIONS[orientation]}): the image loader (mmcv/cv2) turns it '
                      f'upright ({upright[0]}x{upright[1]}) but does not turn its label '
                      f'{label_path}, so they would be misaligned. Save the image upright '
                      f'(e.g. PIL.ImageOps.exif_transpose(Image.open(path)).save(path), '
                      f'which drops the tag) and check that its label matches the upright '
                      f'image')
        try:
            with Image.open(label_path) as label:
                bits = _label_bits(label, label_path, check)
                if bits is None:
                    continue
                label_size = label.size
                values = np.asarray(label)  # palette PNGs: the indices
        except Exception as err:  # noqa: BLE001
            check.add('unreadable label files', f'{label_path} ({type(err).__name__}: {err})')
            continue
        check.label_bits.add(bits)
        if label_size not in sizes:
            check.add('size mismatches',
                      f'{label_path} is {label_size[0]}x{label_size[1]} but its image '
                      f'{image_path} is {image_size[0]}x{image_size[1]} (width x height)')
        unique, counts = np.unique(values.astype(np.int64), return_counts=True)
        bad = [int(v) for v in unique if (v < 0 or v >= num_classes) and v != ignore_index]
        if bad:
            check.add('unknown label values',
                      f'{label_path}: values {bad[:8]} are neither a class (0..'
                      f'{num_classes - 1}) nor the ignore index {ignore_index}')
        valid = (unique >= 0) & (unique < num_classes)
        np.add.at(pixels, unique[valid], counts[valid])
    check.pixels = pixels
    return check


# ----------------------------------------------------------------- dataset
@DATASETS.register_module()
class OpenVocabCustomDataset(BaseSegDataset):
    """A user's dataset: images, index label maps and named classes.

    Args:
        classes (Sequence[str]): Class names, label value ``i`` = entry
            ``i`` (comma-separated synonyms allowed).
        unseen_classes (Sequence[str]): Display names of the unseen classes.
        seen_only (bool): Keep only the seen classes (training): unseen
            labels become ``ignore_index``, seen labels are renumbered in
            order and the dataset's classes are the seen ones.
        ignore_index (int): Unlabelled value (255; 65535 for 16-bit labels
            of more than 255 classes).
        img_suffix (str), seg_map_suffix (str): File endings.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments
            (``data_root``, ``data_prefix``, ``ann_file``, ``pipeline``, ...).
    """

    METAINFO = dict()

    def __init__(self, classes: Sequence[str], unseen_classes: Sequence[str] = (),
                 seen_only: bool = False, ignore_index: int = 255,
                 img_suffix: str = '.jpg', seg_map_suffix: str = '.png', **kwargs):
        vocabulary = Vocabulary(list(classes), source='OpenVocabCustomDataset classes')
        self.all_classes = vocabulary.to_list()
        display = list(vocabulary.class_names)
        unseen_classes = [_normalise(n) for n in unseen_classes]  # as the vocabulary's
        missing = [n for n in unseen_classes if n not in display]
        if missing:
            raise ValueError(f'OpenVocabCustomDataset: unseen classes {missing} are not '
                             f'display names (first names) of the classes.')
        self.unseen_classes = list(unseen_classes)
        self.seen_only = seen_only
        keep = [i for i, n in enumerate(display) if not (seen_only and n in unseen_classes)]
        self._kept = keep
        if 'metainfo' in kwargs and kwargs['metainfo']:
            raise ValueError('OpenVocabCustomDataset takes its classes from `classes`; '
                             'remove `metainfo` from the dataset config.')
        kwargs.pop('metainfo', None)
        palette = generate_palette(len(self.all_classes))
        metainfo = dict(classes=[self.all_classes[i] for i in keep],
                        palette=[palette[i] for i in keep])
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         ignore_index=ignore_index, metainfo=metainfo, **kwargs)

    def get_label_map(self, new_classes=None) -> Optional[dict]:
        """Stored value -> training value (seen-only: unseen -> ignore)."""
        kept = getattr(self, '_kept', None)
        if kept is None or len(kept) == len(self.all_classes):
            return None
        label_map = {old: self.ignore_index for old in range(len(self.all_classes))}
        label_map.update({old: new for new, old in enumerate(kept)})
        return label_map

    def load_data_list(self) -> List[dict]:
        """mmseg's list, each sample with ``num_classes``/``ignore_index``
        (read by :class:`~mmovss.datasets.LoadSegAnnotations` to check values)."""
        data_list = super().load_data_list()
        num_classes = len(self._kept)
        for info in data_list:
            info['num_classes'] = num_classes
            info['ignore_index'] = self.ignore_index
        if not data_list:
            raise FileNotFoundError(
                f'OpenVocabCustomDataset found no images ending with {self.img_suffix!r} '
                f'under {self.data_prefix.get("img_path")!r}; check data_root, data_prefix '
                f'and img_suffix (tools/dataset_converters/custom_dataset.py writes them).')
        return data_list
