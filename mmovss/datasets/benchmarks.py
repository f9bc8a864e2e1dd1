"""The open-vocabulary segmentation benchmarks as registered mmseg datasets.

Each class takes its METAINFO ``classes`` from the benchmark vocabulary
(:func:`mmovss.vocab.load_benchmark_classes`: comma-separated synonyms per
class, in label order) and lists where the benchmark lives in the ``'mmseg'``
and ``'detectron2'`` layouts (see :mod:`mmovss.datasets.layout` and
``docs/dataset_prepare.md``). Benchmarks mmseg already has are subclasses of
mmseg's dataset classes, registered under new names, so their label files
keep their meaning while the class names come from our vocabulary.

=====================  ========  ==========  ====================================
registered name        classes   ignore      label files
=====================  ========  ==========  ====================================
ADE20K847Dataset       847       65535       16-bit ``.tif`` (both layouts)
ADE20K150Dataset       150       255         0 = other (mmseg) / 0-149 (d2)
PascalContext459Dataset 459      65535       16-bit ``.tif``
PascalContext59Dataset 59        255         0 = background (mmseg) / 0-58 (d2)
PascalContext60Dataset 60        255         0 = background (mmseg only)
PascalVOC20Dataset     20        255         VOC palette PNG, background ignored
PascalVOC21Dataset     21        255         VOC palette PNG, 0 = background
PascalVOC20bDataset    21        255         VOC-21's files (PAS-20b's names)
COCOStuff171Dataset    171       255         ``*_labelTrainIds.png`` / d2 PNG
COCOObjectDataset      81        255         ``*_instanceTrainIds.png``
CityscapesOVDataset    19        255         ``*_gtFine_labelTrainIds.png``
=====================  ========  ==========  ====================================
"""
from mmseg.datasets import (
    ADE20KDataset,
    BaseSegDataset,
    CityscapesDataset,
    COCOStuffDataset,
    PascalContextDataset,
    PascalContextDataset59,
    PascalVOCDataset,
)
from mmseg.registry import DATASETS

from ..vocab.benchmarks import load_benchmark_classes
from .layout import BenchmarkDatasetMixin, Layout, generate_palette

__all__ = [
    'ADE20K847Dataset', 'ADE20K150Dataset', 'PascalContext459Dataset',
    'PascalContext59Dataset', 'PascalContext60Dataset', 'PascalVOC20Dataset',
    'PascalVOC21Dataset', 'PascalVOC20bDataset', 'COCOStuff171Dataset',
    'COCOObjectDataset', 'CityscapesOVDataset', 'WIDE_IGNORE_INDEX'
]

#: Ignore index of the benchmarks with more than 255 classes (16-bit labels).
WIDE_IGNORE_INDEX = 65535

_ADE_SPLITS = dict(train='training', val='validation')
_COCO_SPLITS = dict(train='train2017', val='val2017')


@DATASETS.register_module()
class ADE20K847Dataset(BenchmarkDatasetMixin, BaseSegDataset):
    """ADE20K-full validation, 847 classes (A-847).

    Labels are the 16-bit ``.tif`` files of the detectron2 preparation
    (``ADE20K_2021_17_01/annotations_detectron2``; 0-846, 65535 = unlabelled),
    written by ``tools/dataset_converters/ade20k_847.py``. Both layout names
    read this one tree.
    """
    METAINFO = dict(
        classes=load_benchmark_classes('ade20k_847'),
        palette=generate_palette(847))
    IGNORE_INDEX = WIDE_IGNORE_INDEX
    _TREE = Layout(
        img_path='images_detectron2/{split}',
        seg_map_path='annotations_detectron2/{split}',
        seg_map_suffix='.tif',
        splits=_ADE_SPLITS)
    LAYOUTS = dict(mmseg=_TREE, detectron2=_TREE)


@DATASETS.register_module()
class ADE20K150Dataset(BenchmarkDatasetMixin, ADE20KDataset):
    """ADE20K SceneParsing validation, 150 classes (A-150)."""
    METAINFO = dict(
        classes=load_benchmark_classes('ade20k_150'),
        palette=ADE20KDataset.METAINFO['palette'])
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='images/{split}',
            seg_map_path='annotations/{split}',
            reduce_zero_label=True,
            splits=_ADE_SPLITS),
        detectron2=Layout(
            img_path='images/{split}',
            seg_map_path='annotations_detectron2/{split}',
            list_by_seg_map=True,
            splits=_ADE_SPLITS))


@DATASETS.register_module()
class PascalContext459Dataset(BenchmarkDatasetMixin, BaseSegDataset):
    """PASCAL Context full, 459 classes (PC-459), 16-bit labels."""
    METAINFO = dict(
        classes=load_benchmark_classes('pascal_context_459'),
        palette=generate_palette(459))
    IGNORE_INDEX = WIDE_IGNORE_INDEX
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext459',
            seg_map_suffix='.tif',
            ann_file='ImageSets/SegmentationContext/{split}.txt'),
        detectron2=Layout(
            img_path='JPEGImages',
            seg_map_path='annotations_detectron2/pc459_{split}',
            seg_map_suffix='.tif',
            list_by_seg_map=True))


@DATASETS.register_module()
class PascalContext59Dataset(BenchmarkDatasetMixin, PascalContextDataset59):
    """PASCAL Context, 59 classes without background (PC-59)."""
    METAINFO = dict(
        classes=load_benchmark_classes('pascal_context_59'),
        palette=PascalContextDataset59.METAINFO['palette'])
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext',
            reduce_zero_label=True,
            ann_file='ImageSets/SegmentationContext/{split}.txt'),
        detectron2=Layout(
            img_path='JPEGImages',
            seg_map_path='annotations_detectron2/pc59_{split}',
            list_by_seg_map=True))


@DATASETS.register_module()
class PascalContext60Dataset(BenchmarkDatasetMixin, PascalContextDataset):
    """PASCAL Context, 59 classes plus background (PC-60)."""
    METAINFO = dict(
        classes=load_benchmark_classes('pascal_context_60'),
        palette=PascalContextDataset.METAINFO['palette'])
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='JPEGImages',
            seg_map_path='SegmentationClassContext',
            ann_file='ImageSets/SegmentationContext/{split}.txt'),
        detectron2=None)
    MISSING_LAYOUT_HINT = (
        'The detectron2-prepared PC-59 labels map background to the ignore '
        "index; use layout='mmseg' (VOC2010/SegmentationClassContext, "
        'written by tools/dataset_converters/pascal_context.py).')


@DATASETS.register_module()
class PascalVOC20Dataset(BenchmarkDatasetMixin, PascalVOCDataset):
    """PASCAL VOC 2012 val, 20 object classes, background ignored (VOC-20)."""
    METAINFO = dict(
        classes=load_benchmark_classes('voc20'),
        palette=PascalVOCDataset.METAINFO['palette'][1:])
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='JPEGImages',
            seg_map_path='SegmentationClass',
            reduce_zero_label=True,
            ann_file='ImageSets/Segmentation/{split}.txt'),
        detectron2=Layout(
            img_path='JPEGImages',
            seg_map_path='annotations_detectron2/{split}',
            list_by_seg_map=True))


#: CAT-Seg's ``annotations_detectron2_bg`` puts background last (20).
_VOC21_BG_LAST_TO_FIRST = {20: 0, **{i: i + 1 for i in range(20)}}


@DATASETS.register_module()
class PascalVOC21Dataset(BenchmarkDatasetMixin, PascalVOCDataset):
    """PASCAL VOC 2012 val, background + 20 classes (VOC-21)."""
    METAINFO = dict(
        classes=load_benchmark_classes('voc21'),
        palette=PascalVOCDataset.METAINFO['palette'])
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='JPEGImages',
            seg_map_path='SegmentationClass',
            ann_file='ImageSets/Segmentation/{split}.txt'),
        detectron2=Layout(
            img_path='JPEGImages',
            seg_map_path='annotations_detectron2_bg/{split}',
            list_by_seg_map=True,
            label_map=_VOC21_BG_LAST_TO_FIRST))


@DATASETS.register_module()
class PascalVOC20bDataset(PascalVOC21Dataset):
    """PAS-20b: VOC-21's images, labels and metric, background named by
    CAT-Seg's 39 background names (``datasets/voc20b.json``).

    A prediction on any name of class 0 is background; the mIoU is over the
    21 labels, background included, as CAT-Seg's ``VOCbEvaluator``.
    """
    METAINFO = dict(
        classes=load_benchmark_classes('voc20b'),
        palette=PascalVOCDataset.METAINFO['palette'])


@DATASETS.register_module()
class COCOStuff171Dataset(BenchmarkDatasetMixin, COCOStuffDataset):
    """COCO-Stuff 164k, 171 classes (80 things + 91 stuff)."""
    METAINFO = dict(
        classes=load_benchmark_classes('coco_stuff171'),
        palette=COCOStuffDataset.METAINFO['palette'])
    LAYOUTS = dict(
        mmseg=Layout(
            img_path='images/{split}',
            seg_map_path='annotations/{split}',
            seg_map_suffix='_labelTrainIds.png',
            splits=_COCO_SPLITS),
        detectron2=Layout(
            img_path='{split}',
            seg_map_path='stuffthingmaps_detectron2/{split}',
            list_by_seg_map=True,
            splits=_COCO_SPLITS))


@DATASETS.register_module()
class COCOObjectDataset(BenchmarkDatasetMixin, BaseSegDataset):
    """COCO-Object: background + the 80 COCO thing classes.

    Labels (``*_instanceTrainIds.png``: 0 = background, i.e. stuff and
    unlabelled pixels, 1-80 = things) are derived from COCO-Stuff 164k by
    ``tools/dataset_converters/coco_object.py`` (the GroupViT/TCL/SCLIP
    convention). Both layout names read this one tree.
    """
    METAINFO = dict(
        classes=load_benchmark_classes('coco_object'),
        palette=[[0, 0, 0]] + COCOStuffDataset.METAINFO['palette'][:80])
    _TREE = Layout(
        img_path='images/{split}',
        seg_map_path='annotations/{split}',
        seg_map_suffix='_instanceTrainIds.png',
        splits=_COCO_SPLITS)
    LAYOUTS = dict(mmseg=_TREE, detectron2=_TREE)


@DATASETS.register_module()
class CityscapesOVDataset(BenchmarkDatasetMixin, CityscapesDataset):
    """Cityscapes, 19 train ids (``*_gtFine_labelTrainIds.png``).

    Both layout names read mmseg's tree, which is also detectron2's.
    """
    METAINFO = dict(
        classes=load_benchmark_classes('cityscapes'),
        palette=CityscapesDataset.METAINFO['palette'])
    _TREE = Layout(
        img_path='leftImg8bit/{split}',
        seg_map_path='gtFine/{split}',
        img_suffix='_leftImg8bit.png',
        seg_map_suffix='_gtFine_labelTrainIds.png')
    LAYOUTS = dict(mmseg=_TREE, detectron2=_TREE)
