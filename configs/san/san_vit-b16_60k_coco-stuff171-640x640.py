# SAN ViT-B/16 trained on COCO-Stuff-171 (paper recipe: 640x640 crops,
# batch 32, AdamW lr 1e-4, wd 1e-4, poly decay, 60k iterations; the CLIP
# position embedding is trained, the rest of CLIP frozen).
#   bash tools/dist_train.sh configs/san/san_vit-b16_60k_coco-stuff171-640x640.py 4
_base_ = [
    '../_base_/models/san_vit-b16.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_80k.py',
]
crop_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomChoiceResize',
         scales=[int(640 * x * 0.1) for x in range(5, 16)],
         resize_type='ResizeShortestEdge', max_size=2560),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# 4 GPUs x 8 images
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        'positional_embedding': dict(decay_mult=0.),
        'pos_embed': dict(decay_mult=0.),
        'query_embed': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.),
    }),
    loss_scale='dynamic',
    clip_grad=dict(max_norm=0.01, norm_type=2))
max_iters = 60000
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end=max_iters,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                     interval=10000))
