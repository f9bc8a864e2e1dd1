# ZegFormer R-101 + CLIP ViT-B/16 trained on COCO-Stuff-171 semantic masks (the
# cross-dataset setting of later OVSS papers): 640x640 crops, batch 32 in the
# paper (here 2 per GPU x 16 GPUs), AdamW lr 1e-4, wd 1e-4, backbone lr x 0.1,
# 60k iterations, poly decay (the released zegformer_R101_bs32_60k config).
# For the generalised zero-shot split (156 seen / 15 unseen COCO-Stuff classes)
# train on a `classes` subset and set decode_head.calibration (gamma).
_base_ = [
    '../_base_/models/zegformer_r101_vit-b16.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_80k.py',
]
crop_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
model = dict(data_preprocessor=dict(size=crop_size, size_divisor=None))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(_delete_=True, max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1),
                                    'norm': dict(decay_mult=0.),
                                    'query_pos': dict(decay_mult=0.)}))
max_iters = 60000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
