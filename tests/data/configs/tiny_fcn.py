# A tiny closed-vocabulary model for tool tests: mmseg's FCN base config
# (inherited through `mmseg::`) shrunk to ResNet-18 on 48x64 images of the
# dataset written by mmovss.testing.data.make_tiny_seg_dataset. The test sets
# `data_root` through --cfg-options.
_base_ = [
    'mmseg::_base_/models/fcn_r50-d8.py',
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/schedules/schedule_20k.py',
]
classes = ('background', 'red box', 'green box', 'blue box')
metainfo = dict(classes=classes, palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]])
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(48, 64)),
    pretrained=None,
    backbone=dict(depth=18, norm_cfg=norm_cfg, init_cfg=None),
    decode_head=dict(in_channels=512, channels=32, num_convs=1, num_classes=4,
                     norm_cfg=norm_cfg),
    auxiliary_head=None,
    test_cfg=dict(mode='whole'))
data_root = 'data/tiny'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.jpg', seg_map_suffix='.png',
                 data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
                 img_suffix='.jpg', seg_map_suffix='.png',
                 data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=6, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=6, val_interval=1000)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=3),
    visualization=dict(type='SegVisualizationHook'))
randomness = dict(seed=0)
