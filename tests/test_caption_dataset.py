"""COCO-Captions-style dataset, caption words, caption sampling and the
sampler mixing caption and segmentation data."""
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

import mmovss  # noqa: F401
from mmovss.datasets.captions import caption_words

from mmengine.dataset import ConcatDataset
from mmengine.registry import init_default_scope
from mmseg.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS


@pytest.fixture
def coco_captions(tmp_path):
    (tmp_path / 'images').mkdir()
    for name in ('a.jpg', 'b.jpg', 'c.jpg'):
        Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(tmp_path / 'images' / name)
    data = dict(
        images=[dict(id=1, file_name='a.jpg', height=8, width=10),
                dict(id=2, file_name='b.jpg', height=8, width=10),
                dict(id=3, file_name='c.jpg', height=8, width=10)],  # no caption
        annotations=[dict(id=10, image_id=1, caption='A cat sitting on a red mat.'),
                     dict(id=11, image_id=1, caption='The cat and a dog.'),
                     dict(id=12, image_id=2, caption='Traffic light near the street.')])
    (tmp_path / 'captions.json').write_text(json.dumps(data))
    return tmp_path


def test_caption_words_with_and_without_vocabulary():
    assert caption_words('A cat sitting on a red mat.') == ['cat', 'red', 'mat']
    vocab = ['traffic light', 'street', 'light', 'cat']
    assert caption_words('Traffic light near the street, a light.', vocab) == \
        ['traffic light', 'street', 'light']
    assert caption_words('Nothing here.', vocab) == []


def test_caption_dataset_loads_coco_json(coco_captions):
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='CaptionDataset', data_root=str(coco_captions), ann_file='captions.json',
        data_prefix=dict(img_path='images'), word_vocabulary=['cat', 'dog, puppy', 'mat'],
        pipeline=[dict(type='LoadImageFromFile'), dict(type='SampleCaption', random_pick=False),
                  dict(type='PackSegInputs', meta_keys=('img_path', 'img_shape',
                                                        'caption', 'caption_words'))]))
    assert len(dataset) == 2  # the image without captions is skipped
    info = dataset.get_data_info(0)
    assert info['captions'] == ['A cat sitting on a red mat.', 'The cat and a dog.']
    assert info['caption_words'] == [['cat', 'mat'], ['cat', 'dog']]
    sample = dataset[0]['data_samples']
    assert sample.caption == 'A cat sitting on a red mat.'
    assert sample.caption_words == ['cat', 'mat']
    assert 'gt_sem_seg' not in sample
    merged = TRANSFORMS.build(dict(type='SampleCaption', merge_all=True))(
        dict(captions=info['captions'], caption_words=info['caption_words']))
    assert merged['caption_words'] == ['cat', 'mat', 'dog']


def test_caption_dataset_rejects_other_json(tmp_path):
    (tmp_path / 'bad.json').write_text(json.dumps([dict(caption='x')]))
    with pytest.raises(ValueError, match='COCO-Captions'):
        DATASETS.build(dict(type='CaptionDataset', ann_file=str(tmp_path / 'bad.json')))


def test_mixed_source_sampler_draws_by_ratio(coco_captions, tiny_dataset):
    init_default_scope('mmseg')
    captions = dict(type='CaptionDataset', data_root=str(coco_captions),
                    ann_file='captions.json', data_prefix=dict(img_path='images'))
    segmentation = dict(type='BaseSegDataset', data_root=tiny_dataset['data_root'],
                        data_prefix=dict(img_path='img_dir/train',
                                         seg_map_path='ann_dir/train'),
                        img_suffix=tiny_dataset['img_suffix'],
                        metainfo=dict(classes=tiny_dataset['classes']))
    concat = ConcatDataset([DATASETS.build(segmentation), DATASETS.build(captions)],
                           ignore_keys=['classes', 'palette', 'label_map',
                                        'reduce_zero_label'])
    num_seg = concat.cumulative_sizes[0]
    sampler = DATA_SAMPLERS.build(dict(type='MixedSourceSampler', ratios=[3, 1], seed=0),
                                  default_args=dict(dataset=concat))
    it = iter(sampler)
    draws = [next(it) for _ in range(4000)]
    parts = Counter(i >= num_seg for i in draws)
    assert parts[False] / len(draws) == pytest.approx(0.75, abs=0.03)
    assert set(i for i in draws if i >= num_seg) == {num_seg, num_seg + 1}
    only_seg = DATA_SAMPLERS.build(dict(type='MixedSourceSampler', ratios=[1, 0], seed=0),
                                   default_args=dict(dataset=concat))
    it = iter(only_seg)
    first = [next(it) for _ in range(num_seg)]
    assert sorted(first) == list(range(num_seg))  # each part walked without repeats
    with pytest.raises(TypeError, match='ConcatDataset'):
        DATA_SAMPLERS.build(dict(type='MixedSourceSampler', ratios=[1]),
                            default_args=dict(dataset=list(range(3))))
