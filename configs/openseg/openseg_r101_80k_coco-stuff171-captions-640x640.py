# OpenSeg R-101 trained on segmentation masks (COCO-Stuff-171 semantic maps,
# class-agnostic) mixed 1:1 with COCO Captions (grounding loss), 640x640
# crops. The paper trains on COCO panoptic masks + COCO Captions / Localized
# Narratives with batch 64+64 (Sec. 4.1); this is the semantic-segmentation
# version. Captions: data/coco/annotations/captions_train2017.json.
_base_ = [
    '../_base_/models/openseg_r101.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_80k.py',
]
crop_size = (640, 640)
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
             'caption', 'caption_words')
seg_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
caption_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='SampleCaption'),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
coco_stuff_train = dict(
    type='COCOStuff171Dataset', data_root='data/coco_stuff164k', layout='mmseg',
    split='train', pipeline=seg_pipeline)
coco_captions = dict(
    type='CaptionDataset', data_root='data/coco',
    ann_file='annotations/captions_train2017.json',
    data_prefix=dict(img_path='train2017'), pipeline=caption_pipeline)
train_dataloader = dict(
    _delete_=True, batch_size=4, num_workers=4, persistent_workers=True,
    sampler=dict(type='MixedSourceSampler', ratios=[1, 1]),
    dataset=dict(type='ConcatDataset', datasets=[coco_stuff_train, coco_captions],
                 # caption data have no labels: their metainfo lacks these keys
                 ignore_keys=['classes', 'palette', 'label_map', 'reduce_zero_label',
                              'ignore_index']))
model = dict(data_preprocessor=dict(size=crop_size, size_divisor=None))
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(_delete_=True, max_norm=1.0, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1),
                                    'norm': dict(decay_mult=0.)}))
