"""Real samples from ../shared/realdata: converted to tmp dirs and loaded."""
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

import mmovss  # noqa: F401
from mmovss.testing.tools import load_tool

from mmengine import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REALDATA = osp.join(osp.dirname(REPO), 'shared', 'realdata')
if not osp.isdir(REALDATA):
    REALDATA = '/work/shared/realdata'
pytestmark = pytest.mark.skipif(not osp.isdir(REALDATA),
                                reason='shared/realdata not available')


@pytest.fixture(autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def _script(name):
    return load_tool(f'dataset_converters/{name}.py')


def _dataset(key, **overrides):
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', f'{key}.py'))
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.update(overrides)
    return DATASETS.build(dataset_cfg)


def _gt(sample):
    return sample['data_samples'].gt_sem_seg.data[0].numpy()


@pytest.mark.parametrize('key,script,table', [
    ('coco_stuff171', 'coco_stuff', 'coco_stuff_to_171'),
    ('coco_object', 'coco_object', 'coco_stuff_to_object'),
])
def test_coco_stuff_real_samples_convert_and_load(tmp_path, key, script,
                                                  table):
    src = osp.join(REALDATA, 'coco_stuff164k')
    _script(script).main([src, '--out-dir', str(tmp_path), '--splits',
                          'val2017'])
    os.makedirs(tmp_path / 'images')
    os.symlink(osp.join(src, 'images', 'val2017'),
               tmp_path / 'images' / 'val2017')
    dataset = _dataset(key, data_root=str(tmp_path))
    assert len(dataset) == 8
    sample = dataset[0]
    name = osp.basename(sample['data_samples'].img_path)[:-4]
    raw = np.array(Image.open(osp.join(src, 'annotations', 'val2017',
                                       name + '.png')))
    gt = _gt(sample)
    assert gt.shape == raw.shape
    # spot-check the id tables on this real image
    person = 0 if key == 'coco_stuff171' else 1
    np.testing.assert_array_equal(gt[raw == 0], person)
    # COCO-Object: unlabelled is background (GroupViT's published labels)
    np.testing.assert_array_equal(gt[raw == 255],
                                  255 if key == 'coco_stuff171' else 0)
    stuff = raw > 90
    stuff &= raw != 255
    if key == 'coco_object':
        np.testing.assert_array_equal(gt[stuff], 0)
    else:
        assert (gt[stuff] >= 80).all() and (gt[stuff] <= 170).all()
    assert set(np.unique(gt)) <= set(range(171)) | {255}


def test_cityscapes_real_samples_convert_and_load(tmp_path):
    src = osp.join(REALDATA, 'cityscapes')
    _script('cityscapes').main([src, '--out-dir', str(tmp_path),
                                '--splits', 'train'])
    os.symlink(osp.join(src, 'leftImg8bit'), tmp_path / 'leftImg8bit')
    dataset = _dataset('cityscapes', data_root=str(tmp_path), split='train')
    assert len(dataset) == 3
    sample = dataset[0]
    raw = np.array(Image.open(
        sample['data_samples'].seg_map_path.replace('labelTrainIds',
                                                    'labelIds').replace(
            str(tmp_path), src)))
    gt = _gt(sample)
    np.testing.assert_array_equal(gt[raw == 7], 0)  # road
    np.testing.assert_array_equal(gt[raw == 26], 13)  # car
    np.testing.assert_array_equal(gt[raw < 7], 255)
    assert set(np.unique(gt)) <= set(range(19)) | {255}


def test_ade20k_real_samples_load_with_the_150_class_convention():
    root = osp.join(REALDATA, 'ade', 'ADEChallengeData2016')
    dataset = _dataset('ade20k_150', data_root=root)
    assert len(dataset) == 3
    for index in range(len(dataset)):
        sample = dataset[index]
        raw = np.array(Image.open(sample['data_samples'].seg_map_path))
        expected = raw.astype(np.int64) - 1
        expected[raw == 0] = 255
        np.testing.assert_array_equal(_gt(sample), expected)
        # the image is resized for the model, the label is not
        assert sample['inputs'].shape[-2:] != raw.shape
