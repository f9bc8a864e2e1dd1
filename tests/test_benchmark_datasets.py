"""Benchmark vocabularies, dataset configs and both on-disk layouts."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

import mmovss  # noqa: F401  (registers the datasets)
from mmovss.testing.benchmark_data import TREES, make_benchmark_tree
from mmovss.vocab import BENCHMARK_NAMES, load_benchmark_classes

from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, TRANSFORMS

CONFIG_DIR = osp.join(osp.dirname(osp.dirname(__file__)), 'configs', '_base_',
                      'datasets')
NUM_CLASSES = {
    'ade20k_847': 847, 'ade20k_150': 150, 'pascal_context_459': 459,
    'pascal_context_59': 59, 'pascal_context_60': 60, 'voc20': 20,
    'voc21': 21, 'voc20b': 21, 'coco_stuff171': 171, 'coco_object': 81, 'cityscapes': 19
}
LAYOUT_CASES = [(key, layout) for key in NUM_CLASSES
                for layout in ('mmseg', 'detectron2')
                if (key, layout) != ('pascal_context_60', 'detectron2')]


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def _config(key):
    return Config.fromfile(osp.join(CONFIG_DIR, f'{key}.py'))


def test_vocabularies_have_the_benchmark_class_counts():
    assert set(BENCHMARK_NAMES) == set(NUM_CLASSES)
    for key, count in NUM_CLASSES.items():
        classes = load_benchmark_classes(key)
        assert len(classes) == count, key
        assert len(set(classes)) == count, f'{key} has duplicate entries'
        assert all(c and c == c.strip() for c in classes)
    assert load_benchmark_classes('ade20k_150')[0].startswith('wall, walls')
    assert load_benchmark_classes('voc21')[0].startswith('sky, wall')
    assert load_benchmark_classes('pascal_context_60')[0] == 'background'


def test_unknown_vocabulary_lists_the_valid_keys():
    with pytest.raises(ValueError, match='ade20k_847.*cityscapes'):
        load_benchmark_classes('ade20k_999')


@pytest.mark.parametrize('key', sorted(NUM_CLASSES))
def test_dataset_config_loads_and_has_the_class_count(key):
    cfg = _config(key)
    for loader in ('val_dataloader', 'test_dataloader'):
        dataset_cls = DATASETS.get(cfg[loader].dataset.type)
        assert len(dataset_cls.METAINFO['classes']) == NUM_CLASSES[key]
        assert len(dataset_cls.METAINFO['palette']) == NUM_CLASSES[key]
    for evaluator in ('val_evaluator', 'test_evaluator'):
        assert cfg[evaluator].type == 'OpenVocabIoUMetric'
    has_train = key in ('coco_stuff171', 'ade20k_150', 'pascal_context_59',
                        'cityscapes')
    assert ('train_dataloader' in cfg) == has_train
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': '/elsewhere'})
    assert cfg.test_dataloader.dataset.data_root == '/elsewhere'


@pytest.mark.parametrize('key,layout', LAYOUT_CASES)
def test_tiny_tree_loads_through_the_config_pipeline(tmp_path, key, layout):
    tree_key = (key, layout) if (key, layout) in TREES else (key, 'mmseg')
    if tree_key not in TREES:
        tree_key = (key, 'detectron2')
    tree = make_benchmark_tree(*tree_key, str(tmp_path), NUM_CLASSES[key])
    cfg = _config(key).test_dataloader.dataset
    cfg.update(data_root=tree.data_root, layout=layout)
    dataset = DATASETS.build(cfg)

    assert len(dataset) == len(tree.names)  # unlabelled images not listed
    assert dataset.metainfo['ignore_index'] == tree.ignore_index
    for index, name in enumerate(tree.names):
        sample = dataset[index]
        gt = sample['data_samples'].gt_sem_seg.data[0].numpy()
        assert name in sample['data_samples'].img_path
        np.testing.assert_array_equal(gt, tree.labels[name])
    if NUM_CLASSES[key] > 255:
        assert gt.max() == tree.ignore_index
        assert (gt == NUM_CLASSES[key] - 1).any() and (gt == 300).any()


def test_wide_labels_survive_train_augmentation(tmp_path):
    tree = make_benchmark_tree('ade20k_847', 'detectron2', str(tmp_path), 847,
                               num_samples=1)
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadSegAnnotations'),
        dict(type='Resize', scale=(32, 24), keep_ratio=False),
        dict(type='RandomCrop', crop_size=(24, 32), cat_max_ratio=0.75,
             ignore_index=65535),
        dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        dict(type='PackSegInputs')
    ]
    dataset = DATASETS.build(
        dict(type='ADE20K847Dataset', data_root=tree.data_root,
             pipeline=pipeline))
    gt = dataset[0]['data_samples'].gt_sem_seg.data[0].numpy()
    label = tree.labels[tree.names[0]]
    expected = np.repeat(np.repeat(label, 2, axis=0), 2, axis=1)[:, ::-1]
    np.testing.assert_array_equal(gt, expected)
    assert gt.max() == 65535 and (gt == 846).any()


def test_16bit_loader_matches_mmseg_on_8bit_labels(tmp_path):
    tree = make_benchmark_tree('ade20k_150', 'mmseg', str(tmp_path), 150)
    info = dict(seg_map_path=osp.join(tree.data_root, 'annotations',
                                      'validation',
                                      tree.names[0] + '.png'),
                reduce_zero_label=True, seg_fields=[])
    ours = TRANSFORMS.build(dict(type='LoadSegAnnotations'))(dict(info))
    theirs = TRANSFORMS.build(dict(type='LoadAnnotations'))(
        dict(info, seg_fields=[]))
    assert ours['gt_seg_map'].dtype == theirs['gt_seg_map'].dtype == np.uint8
    np.testing.assert_array_equal(ours['gt_seg_map'], theirs['gt_seg_map'])


def test_wide_reduce_zero_label_does_not_wrap(tmp_path):
    path = str(tmp_path / 'label.png')
    raw = np.array([[0, 1, 847, 65535], [2, 2, 300, 2]], np.uint16)
    Image.fromarray(raw).save(path)
    out = TRANSFORMS.build(dict(type='LoadSegAnnotations'))(
        dict(seg_map_path=path, reduce_zero_label=True, seg_fields=[],
             num_classes=847, ignore_index=65535))
    assert out['gt_seg_map'].dtype == np.uint16
    assert out['gt_seg_map'].tolist() == [[65535, 0, 846, 65535],
                                          [1, 1, 299, 1]]


def test_out_of_range_label_names_the_file_and_value(tmp_path):
    tree = make_benchmark_tree('ade20k_150', 'detectron2', str(tmp_path), 150,
                               num_samples=1)
    bad = osp.join(tree.data_root, 'annotations_detectron2', 'validation',
                   tree.names[0] + '.png')
    Image.fromarray(np.full((12, 16), 200, np.uint8)).save(bad)
    dataset = DATASETS.build(
        dict(type='ADE20K150Dataset', data_root=tree.data_root,
             layout='detectron2',
             pipeline=[dict(type='LoadSegAnnotations')]))
    with pytest.raises(ValueError, match=r'ade20k_150_000\.png.*\[200\]'):
        dataset[0]


def test_16bit_file_in_an_8bit_dataset_is_refused(tmp_path):
    path = str(tmp_path / 'label.png')
    Image.fromarray(np.array([[3, 300], [1, 2]], np.uint16)).save(path)
    transform = TRANSFORMS.build(dict(type='LoadSegAnnotations'))
    with pytest.raises(ValueError, match='label.png.*300'):
        transform(dict(seg_map_path=path, reduce_zero_label=False,
                       seg_fields=[], num_classes=150, ignore_index=255))


def test_missing_folder_and_bad_layout_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='images/validation.*data_root'):
        DATASETS.build(dict(type='ADE20K150Dataset',
                            data_root=str(tmp_path / 'nowhere')))
    with pytest.raises(ValueError, match="layout 'detectron2' is not "
                       'available'):
        DATASETS.build(dict(type='PascalContext60Dataset',
                            data_root=str(tmp_path), layout='detectron2'))
    with pytest.raises(ValueError, match='unknown layout'):
        DATASETS.build(dict(type='PascalVOC20Dataset', data_root=str(tmp_path),
                            layout='odise'))


def test_class_subset_of_a_wide_dataset_drops_to_the_ignore_index(tmp_path):
    tree = make_benchmark_tree('pascal_context_459', 'detectron2',
                               str(tmp_path), 459, num_samples=1)
    classes = load_benchmark_classes('pascal_context_459')
    subset = (classes[300], classes[0])
    dataset = DATASETS.build(
        dict(type='PascalContext459Dataset', data_root=tree.data_root,
             layout='detectron2', metainfo=dict(classes=subset),
             pipeline=[dict(type='LoadSegAnnotations'),
                       dict(type='PackSegInputs')]))
    assert len(dataset.metainfo['palette']) == 2
    gt = dataset[0]['data_samples'].gt_sem_seg.data[0].numpy()
    label = tree.labels[tree.names[0]]
    expected = np.full_like(label, 65535)
    expected[label == 300] = 0
    expected[label == 0] = 1
    np.testing.assert_array_equal(gt, expected)


def test_wide_labels_survive_loading_metric_and_out(tmp_path):
    from mmovss.evaluation import OpenVocabIoUMetric
    tree = make_benchmark_tree('pascal_context_459', 'mmseg',
                               str(tmp_path / 'data'), 459, num_samples=1)
    cfg = _config('pascal_context_459').test_dataloader.dataset
    cfg.update(data_root=tree.data_root)
    dataset = DATASETS.build(cfg)
    sample = dataset[0]['data_samples']
    gt = sample.gt_sem_seg.data
    pred = gt.clone()
    pred[gt == 65535] = 7  # predictions on ignored pixels must not count
    metric = OpenVocabIoUMetric(output_dir=str(tmp_path / 'out'))
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [dict(pred_sem_seg=dict(data=pred),
                             gt_sem_seg=dict(data=gt),
                             img_path=sample.img_path)])
    assert metric.compute_metrics(metric.results)['mIoU'] == 100.0
    written = np.array(Image.open(tmp_path / 'out' /
                                  (tree.names[0] + '.png')))
    np.testing.assert_array_equal(written, pred[0].numpy())
    assert written.max() == 458 and (written == 300).any()


@pytest.mark.parametrize('key,image,folder', [
    ('cityscapes', 'leftImg8bit/val/frankfurt/{}_leftImg8bit.png', 'frankfurt/'),
    ('coco_stuff171', 'images/val2017/{}.jpg', ''),
    ('ade20k_150', 'images/validation/{}.jpg', ''),
])
def test_labels_whose_image_is_missing_are_not_skipped(tmp_path, key, image,
                                                       folder):
    """A partly extracted image download must not shrink the benchmark."""
    tree = make_benchmark_tree(key, 'mmseg', str(tmp_path), NUM_CLASSES[key])
    dataset_type = _config(key).test_dataloader.dataset.type
    complete = DATASETS.build(dict(type=dataset_type, data_root=tree.data_root))
    assert len(complete) == len(tree.names)
    (tmp_path / image.format(tree.names[-1])).unlink()
    with pytest.raises(FileNotFoundError,
                       match=r'1 label file\(s\) in .* have no image .*'
                       + tree.names[-1] + r'.*extracted only in part'):
        DATASETS.build(dict(type=dataset_type, data_root=tree.data_root))
    # a deliberate subset is listed in ann_file
    split = tmp_path / 'subset.txt'
    split.write_text(folder + tree.names[0] + '\n')
    assert len(DATASETS.build(dict(type=dataset_type, data_root=tree.data_root,
                                   ann_file=str(split)))) == 1
