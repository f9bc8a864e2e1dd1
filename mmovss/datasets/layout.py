"""On-disk layouts of the benchmarks and the dataset mixin that reads them.

Users hold the benchmarks in one of two layouts:

* ``'mmseg'``: the trees MMSegmentation's converters and the official
  downloads give (``ADEChallengeData2016/annotations``, ``VOC2010/
  SegmentationClassContext`` + ``ImageSets``, ``coco_stuff164k/annotations/
  *_labelTrainIds.png``, ...), plus the trees our converters in
  ``tools/dataset_converters/`` write for the benchmarks mmseg lacks.
* ``'detectron2'``: the label folders prepared by the published OVSS repos
  (SAN, CAT-Seg, FC-CLIP, ...): ``annotations_detectron2/...`` next to the
  images, 16-bit ``.tif`` files for ADE-847 and PC-459.

A benchmark dataset class lists a :class:`Layout` per layout name; the
dataset argument ``layout`` picks one and fills in the folders, suffixes,
split file, ``reduce_zero_label`` and label mapping, each of which a config
may still override.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from mmengine import fileio
from mmseg.datasets import BaseSegDataset

__all__ = ['Layout', 'BenchmarkDatasetMixin', 'generate_palette']


@dataclass(frozen=True)
class Layout:
    """Where and how one benchmark is stored in one on-disk layout.

    Paths are relative to ``data_root``; ``{split}`` in them is replaced by
    ``splits[split]``.

    Args:
        img_path (str): Image folder.
        seg_map_path (str): Label folder.
        img_suffix (str): Image file suffix.
        seg_map_suffix (str): Label file suffix.
        reduce_zero_label (bool): Whether label 0 means "unlabelled" and the
            classes start at 1 in the files.
        ann_file (str): Split file listing the sample names ('' = none).
        list_by_seg_map (bool): List the label folder instead of the image
            folder (the image folder may hold more images than are labelled,
            e.g. ``VOC2012/JPEGImages``).
        label_map (dict, optional): Maps label values in the files to class
            indices of the benchmark vocabulary.
        splits (dict): Split name (``'train'``/``'val'``) to the name used
            in the paths.
    """

    img_path: str
    seg_map_path: str
    img_suffix: str = '.jpg'
    seg_map_suffix: str = '.png'
    reduce_zero_label: bool = False
    ann_file: str = ''
    list_by_seg_map: bool = False
    label_map: Optional[Dict[int, int]] = None
    splits: Dict[str, str] = field(
        default_factory=lambda: dict(train='train', val='val'))


def generate_palette(num_classes: int, seed: int = 42) -> List[List[int]]:
    """Returns a fixed random RGB palette with one colour per class.

    Args:
        num_classes (int): Number of colours.
        seed (int): Seed of the generator, so the palette never changes.

    Returns:
        list[list[int]]: ``num_classes`` colours ``[r, g, b]``.
    """
    rng = np.random.RandomState(seed)
    return rng.randint(0, 256, size=(num_classes, 3)).tolist()


class BenchmarkDatasetMixin:
    """Adds the layout switch, input checks and wide-label keys to a dataset.

    Put it first among the bases of a :class:`~mmseg.datasets.BaseSegDataset`
    subclass that defines ``METAINFO`` and ``LAYOUTS``. Every sample dict gets
    ``num_classes`` and ``ignore_index`` so that
    :class:`~mmovss.datasets.transforms.LoadSegAnnotations` can keep and
    check labels above 255; the metainfo gets ``ignore_index`` so that the
    open-vocabulary metric can use the dataset's value.

    Args:
        layout (str): Key of ``LAYOUTS`` (``'mmseg'`` or ``'detectron2'``).
            Defaults to ``'mmseg'``.
        split (str): ``'val'`` or ``'train'``. Defaults to ``'val'``.
        data_prefix (dict, optional): Overrides the layout's folders.
        img_suffix (str, optional): Overrides the layout's image suffix.
        seg_map_suffix (str, optional): Overrides the layout's label suffix.
        reduce_zero_label (bool, optional): Overrides the layout's setting.
        ann_file (str, optional): Overrides the layout's split file.
        ignore_index (int, optional): Defaults to the class's
            ``IGNORE_INDEX`` (255, or 65535 for benchmarks with more than 255
            classes).
        **kwargs: Passed to :class:`~mmseg.datasets.BaseSegDataset`.
    """

    LAYOUTS: Dict[str, Optional[Layout]] = {}
    #: Message for layouts listed as None (not available for a benchmark).
    MISSING_LAYOUT_HINT = ''
    IGNORE_INDEX = 255

    def __init__(self,
                 layout: str = 'mmseg',
                 split: str = 'val',
                 data_prefix: Optional[dict] = None,
                 img_suffix: Optional[str] = None,
                 seg_map_suffix: Optional[str] = None,
                 reduce_zero_label: Optional[bool] = None,
                 ann_file: Optional[str] = None,
                 ignore_index: Optional[int] = None,
                 **kwargs) -> None:
        spec = self._resolve_layout(layout, split)
        split_dir = spec.splits[split]
        self.layout = layout
        self.split = split
        self._layout_label_map = spec.label_map
        if ann_file is None:
            ann_file = spec.ann_file.format(split=split_dir)
        self._list_by_seg_map = spec.list_by_seg_map and not ann_file
        if data_prefix is None:
            data_prefix = dict(
                img_path=spec.img_path.format(split=split_dir),
                seg_map_path=spec.seg_map_path.format(split=split_dir))
        BaseSegDataset.__init__(
            self,
            ann_file=ann_file,
            img_suffix=spec.img_suffix if img_suffix is None else img_suffix,
            seg_map_suffix=(spec.seg_map_suffix
                            if seg_map_suffix is None else seg_map_suffix),
            reduce_zero_label=(spec.reduce_zero_label
                               if reduce_zero_label is None else
                               reduce_zero_label),
            data_prefix=data_prefix,
            ignore_index=(self.IGNORE_INDEX
                          if ignore_index is None else ignore_index),
            **kwargs)
        self._metainfo['ignore_index'] = self.ignore_index

    @classmethod
    def _resolve_layout(cls, layout: str, split: str) -> Layout:
        if layout not in cls.LAYOUTS:
            raise ValueError(
                f'{cls.__name__}: unknown layout {layout!r}; choose one of '
                f'{sorted(cls.LAYOUTS)}.')
        spec = cls.LAYOUTS[layout]
        if spec is None:
            raise ValueError(
                f'{cls.__name__}: layout {layout!r} is not available for '
                f'this benchmark. {cls.MISSING_LAYOUT_HINT}')
        if split not in spec.splits:
            raise ValueError(
                f'{cls.__name__}: split {split!r} is not prepared in the '
                f'{layout!r} layout; choose one of {sorted(spec.splits)}.')
        return spec

    def get_label_map(self, new_classes=None) -> Optional[dict]:
        """Maps benchmark classes to a user subset (dropped -> ignore index).

        Same rule as :meth:`mmseg.datasets.BaseSegDataset.get_label_map`,
        except that dropped classes go to this dataset's ignore index (255 is
        a valid class of the benchmarks with more than 255 classes).
        """
        old_classes = self.METAINFO.get('classes', None)
        if (new_classes is None or old_classes is None
                or list(new_classes) == list(old_classes)):
            return None
        unknown = [c for c in new_classes if c not in old_classes]
        if unknown:
            raise ValueError(
                f'{type(self).__name__}: classes {unknown[:5]} are not in the '
                'benchmark vocabulary; metainfo classes must be a subset of '
                'METAINFO["classes"] (use the exact entries, synonyms '
                'included).')
        return {
            i: (list(new_classes).index(c)
                if c in new_classes else self.ignore_index)
            for i, c in enumerate(old_classes)
        }

    def _update_palette(self) -> list:
        palette = self._metainfo.get('palette', [])
        classes = self._metainfo.get('classes', [])
        if self.label_map is not None and len(palette) > len(classes):
            pairs = sorted(self.label_map.items(), key=lambda x: x[1])
            return [palette[old] for old, new in pairs
                    if new != self.ignore_index]
        return BaseSegDataset._update_palette(self)

    def prepare_data(self, idx: int):
        """Runs the pipeline on sample ``idx``; a failure names its files.

        Decoders do not always say which file they failed on (OpenCV raises
        ``!buf.empty()`` for a zero-byte image), so any exception of the
        pipeline gets a note (PEP 678, printed with the traceback, also from
        dataloader workers) with the sample's index and paths. The exception
        itself is re-raised unchanged.
        """
        try:
            return BaseSegDataset.prepare_data(self, idx)
        except Exception as e:
            info = self.get_data_info(idx)
            e.add_note(
                f'{type(self).__name__} sample {idx}: img_path='
                f'{info.get("img_path")!r}, seg_map_path='
                f'{info.get("seg_map_path")!r}. If the file is empty, '
                f'truncated or not an image, re-download or re-convert it '
                f'(docs/dataset_prepare.md) or remove the sample.')
            raise

    def _missing(self, what: str, path: str) -> FileNotFoundError:
        return FileNotFoundError(
            f'{type(self).__name__}: {what} {path} does not exist '
            f'(layout={self.layout!r}, split={self.split!r}, '
            f'data_root={self.data_root!r}). Set data_root to your copy of '
            'the benchmark and pick the layout it is stored in '
            "(layout='mmseg' or 'detectron2'); docs/dataset_prepare.md "
            'shows both trees and the converters that write them.')

    def load_data_list(self) -> List[dict]:
        """Lists the samples, checking that folders and label files exist
        and, when the image folder is listed, that no label lacks its image.

        Returns:
            list[dict]: One dict per sample with ``img_path``,
            ``seg_map_path``, ``label_map``, ``reduce_zero_label``,
            ``num_classes`` and ``ignore_index``.
        """
        img_dir = self.data_prefix.get('img_path', None)
        ann_dir = self.data_prefix.get('seg_map_path', None)
        local = self.backend_args is None
        if local:
            if not osp.isdir(img_dir):
                raise self._missing('image folder', img_dir)
            if ann_dir is not None and not osp.isdir(ann_dir):
                raise self._missing('label folder', ann_dir)
            if self.ann_file and not osp.isfile(self.ann_file):
                raise self._missing('split file', self.ann_file)

        if self._list_by_seg_map and ann_dir is not None:
            data_list = self._list_seg_maps(img_dir, ann_dir)
        else:
            data_list = BaseSegDataset.load_data_list(self)

        if local:
            for info in data_list:
                for key, what in (('img_path', 'image'),
                                  ('seg_map_path', 'label file')):
                    if key in info and not osp.isfile(info[key]):
                        raise self._missing(what, info[key])
            if (not self._list_by_seg_map and not self.ann_file
                    and ann_dir is not None):
                self._check_labels_have_images(data_list, img_dir, ann_dir)
        if not data_list:
            raise FileNotFoundError(
                f'{type(self).__name__}: no samples found in {img_dir} '
                f'(suffix {self.img_suffix!r}) / {ann_dir} (suffix '
                f'{self.seg_map_suffix!r}). Check data_root and layout.')

        num_classes = len(self._metainfo['classes'])
        label_map = self._compose_label_map()
        for info in data_list:
            info['label_map'] = label_map
            info['num_classes'] = num_classes
            info['ignore_index'] = self.ignore_index
        return data_list

    def _check_labels_have_images(self, data_list: List[dict], img_dir: str,
                                  ann_dir: str) -> None:
        """Refuses label files whose image is missing.

        Samples are listed from the image folder, so a label whose image is
        missing (an image download extracted only in part) would leave the
        benchmark silently, and the scores would be those of a subset.

        Raises:
            FileNotFoundError: Naming the count, an example and the fix.
        """
        listed = {
            osp.normpath(osp.relpath(info['seg_map_path'], ann_dir))
            for info in data_list if 'seg_map_path' in info
        }
        orphans = sorted(
            seg for seg in fileio.list_dir_or_file(
                dir_path=ann_dir, list_dir=False, suffix=self.seg_map_suffix,
                recursive=True)
            if osp.normpath(seg) not in listed)
        if orphans:
            example = osp.join(ann_dir, orphans[0])
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(orphans)} label file(s) in '
                f'{ann_dir} have no image in {img_dir} (suffix '
                f'{self.img_suffix!r}), e.g. {example}; they would be left out '
                f'of the evaluation without a word ({len(data_list)} samples '
                'have both). Was the image download extracted only in part? '
                'Extract it again (docs/dataset_prepare.md), or set ann_file '
                'to a list of the samples to evaluate a subset.')

    def _list_seg_maps(self, img_dir: str, ann_dir: str) -> List[dict]:
        data_list = []
        suffix_len = len(self.seg_map_suffix)
        for seg in fileio.list_dir_or_file(
                dir_path=ann_dir, list_dir=False, suffix=self.seg_map_suffix,
                recursive=True, backend_args=self.backend_args):
            data_list.append(
                dict(
                    img_path=osp.join(img_dir,
                                      seg[:-suffix_len] + self.img_suffix),
                    seg_map_path=osp.join(ann_dir, seg),
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[]))
        return sorted(data_list, key=lambda x: x['img_path'])

    def _compose_label_map(self) -> Optional[dict]:
        """File values -> benchmark classes -> (optional) user subset."""
        layout_map = self._layout_label_map
        subset_map = self.label_map
        if layout_map is None:
            return subset_map
        if subset_map is None:
            return dict(layout_map)
        return {
            old: subset_map.get(mid, mid)
            for old, mid in layout_map.items()
        }
