"""Tiny on-disk copies of the benchmarks in both layouts, for tests.

:func:`make_benchmark_tree` writes a few random images and labels in the
exact tree and file format of one benchmark in one layout (folders, suffixes,
split files, palette PNGs, 16-bit TIFFs, shifted or background-last label
values, unlabelled extra images), and returns the label maps a correct loader
must produce. The trees are written out here independently of
:mod:`mmovss.datasets`, from the published preparations (see
``docs/dataset_prepare.md``).
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

__all__ = ['TREES', 'BenchmarkTree', 'make_benchmark_tree', 'voc_palette']

_IGNORE8 = 255
_IGNORE16 = 65535


def voc_palette() -> List[int]:
    """The PASCAL VOC colour map (768 values) used by its palette PNGs."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def _plus_one(label, ignore):
    """Classes stored from 1, 0 = unlabelled (reduce_zero_label files)."""
    out = label.astype(np.int64) + 1
    out[label == ignore] = 0
    return out


def _same(label, ignore):
    return label.astype(np.int64)


def _background_last(label, ignore):
    """VOC-21 with background stored as 20 (CAT-Seg)."""
    out = label.astype(np.int64) - 1
    out[label == 0] = 20
    out[label == ignore] = 255
    return out


@dataclass(frozen=True)
class _Tree:
    img_dir: str
    seg_dir: str
    img_suffix: str
    seg_suffix: str
    encode: Callable
    file_format: str = 'png8'  # png8 | palette | tif16
    split_file: Optional[str] = None
    extra_image: bool = False  # an unlabelled image that must not be listed


_ADE = 'images/validation'
_COCO_IMG = 'images/val2017'
_VOC_SPLIT = 'ImageSets/Segmentation/val.txt'
_PC_SPLIT = 'ImageSets/SegmentationContext/val.txt'

#: (benchmark key, layout) -> tree description.
TREES: Dict[Tuple[str, str], _Tree] = {
    ('ade20k_847', 'detectron2'): _Tree(
        'images_detectron2/validation', 'annotations_detectron2/validation',
        '.jpg', '.tif', _same, 'tif16'),
    ('ade20k_150', 'mmseg'): _Tree(
        _ADE, 'annotations/validation', '.jpg', '.png', _plus_one),
    ('ade20k_150', 'detectron2'): _Tree(
        _ADE, 'annotations_detectron2/validation', '.jpg', '.png', _same),
    ('pascal_context_459', 'mmseg'): _Tree(
        'JPEGImages', 'SegmentationClassContext459', '.jpg', '.tif', _same,
        'tif16', split_file=_PC_SPLIT, extra_image=True),
    ('pascal_context_459', 'detectron2'): _Tree(
        'JPEGImages', 'annotations_detectron2/pc459_val', '.jpg', '.tif',
        _same, 'tif16', extra_image=True),
    ('pascal_context_59', 'mmseg'): _Tree(
        'JPEGImages', 'SegmentationClassContext', '.jpg', '.png', _plus_one,
        split_file=_PC_SPLIT, extra_image=True),
    ('pascal_context_59', 'detectron2'): _Tree(
        'JPEGImages', 'annotations_detectron2/pc59_val', '.jpg', '.png',
        _same, extra_image=True),
    ('pascal_context_60', 'mmseg'): _Tree(
        'JPEGImages', 'SegmentationClassContext', '.jpg', '.png', _same,
        split_file=_PC_SPLIT, extra_image=True),
    ('voc20', 'mmseg'): _Tree(
        'JPEGImages', 'SegmentationClass', '.jpg', '.png', _plus_one,
        'palette', split_file=_VOC_SPLIT, extra_image=True),
    ('voc20', 'detectron2'): _Tree(
        'JPEGImages', 'annotations_detectron2/val', '.jpg', '.png', _same,
        extra_image=True),
    ('voc21', 'mmseg'): _Tree(
        'JPEGImages', 'SegmentationClass', '.jpg', '.png', _same, 'palette',
        split_file=_VOC_SPLIT, extra_image=True),
    ('voc21', 'detectron2'): _Tree(
        'JPEGImages', 'annotations_detectron2_bg/val', '.jpg', '.png',
        _background_last, extra_image=True),
    ('voc20b', 'mmseg'): _Tree(  # VOC-21's files
        'JPEGImages', 'SegmentationClass', '.jpg', '.png', _same, 'palette',
        split_file=_VOC_SPLIT, extra_image=True),
    ('voc20b', 'detectron2'): _Tree(
        'JPEGImages', 'annotations_detectron2_bg/val', '.jpg', '.png',
        _background_last, extra_image=True),
    ('coco_stuff171', 'mmseg'): _Tree(
        _COCO_IMG, 'annotations/val2017', '.jpg', '_labelTrainIds.png',
        _same),
    ('coco_stuff171', 'detectron2'): _Tree(
        'val2017', 'stuffthingmaps_detectron2/val2017', '.jpg', '.png',
        _same),
    ('coco_object', 'mmseg'): _Tree(
        _COCO_IMG, 'annotations/val2017', '.jpg', '_instanceTrainIds.png',
        _same),
    ('cityscapes', 'mmseg'): _Tree(
        'leftImg8bit/val/frankfurt', 'gtFine/val/frankfurt', '_leftImg8bit.png',
        '_gtFine_labelTrainIds.png', _same),
}


@dataclass
class BenchmarkTree:
    """What :func:`make_benchmark_tree` wrote.

    Attributes:
        data_root (str): Root to pass as the dataset's ``data_root``.
        names (list[str]): Sample names, sorted as the dataset lists them.
        labels (dict[str, np.ndarray]): Expected ``gt_seg_map`` per name,
            in benchmark class indices with the dataset's ignore index.
        ignore_index (int): 255, or 65535 for more than 255 classes.
    """
    data_root: str
    names: List[str]
    labels: Dict[str, np.ndarray]
    ignore_index: int


def _write_label(values: np.ndarray, path: str, file_format: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if file_format == 'tif16':
        Image.fromarray(values.astype(np.uint16)).save(path, format='TIFF')
    elif file_format == 'palette':
        img = Image.fromarray(values.astype(np.uint8), mode='P')
        img.putpalette(voc_palette())
        img.save(path, format='PNG')
    else:
        Image.fromarray(values.astype(np.uint8)).save(path, format='PNG')


def _write_image(path: str, rng: np.random.RandomState,
                 size: Tuple[int, int]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    pixels = rng.randint(0, 256, size=(*size, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def make_benchmark_tree(key: str,
                        layout: str,
                        root: str,
                        num_classes: int,
                        num_samples: int = 2,
                        size: Tuple[int, int] = (12, 16),
                        seed: int = 0) -> BenchmarkTree:
    """Writes a tiny copy of a benchmark in one layout.

    Every label map holds the highest class index (above 255 for ADE-847 and
    PC-459), class 0 and a band of ignored pixels.

    Args:
        key (str): Benchmark key (``'ade20k_150'``, ...).
        layout (str): ``'mmseg'`` or ``'detectron2'``.
        root (str): Folder to write into (becomes ``data_root``).
        num_classes (int): Number of classes of the benchmark.
        num_samples (int): Number of labelled images.
        size (tuple[int, int]): (H, W) of the images.
        seed (int): Seed of the random content.

    Returns:
        BenchmarkTree: The root, sample names and expected labels.
    """
    if (key, layout) not in TREES:
        raise ValueError(f'No tiny tree for {(key, layout)}; known: '
                         f'{sorted(TREES)}.')
    tree = TREES[(key, layout)]
    rng = np.random.RandomState(seed)
    ignore = _IGNORE16 if num_classes > 255 else _IGNORE8
    names, labels = [], {}
    for index in range(num_samples):
        name = f'{key}_{index:03d}'
        label = rng.randint(0, num_classes, size=size).astype(np.int64)
        label[0, 0] = num_classes - 1
        label[0, 1] = 0
        if num_classes > 300:
            label[0, 2] = 300
        label[-1, :] = ignore
        names.append(name)
        labels[name] = label
        _write_image(osp.join(root, tree.img_dir, name + tree.img_suffix),
                     rng, size)
        _write_label(tree.encode(label, ignore),
                     osp.join(root, tree.seg_dir, name + tree.seg_suffix),
                     tree.file_format)
    if tree.extra_image:
        _write_image(osp.join(root, tree.img_dir,
                              f'{key}_unlabelled' + tree.img_suffix), rng,
                     size)
    if tree.split_file:
        path = osp.join(root, tree.split_file)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write('\n'.join(names) + '\n')
    return BenchmarkTree(root, names, labels, ignore)
