# FC-CLIP ConvNeXt-L trained on COCO semantic masks. The paper trains on
# COCO-Panoptic (133 classes, instance masks, 1024x1024 LSJ crops, batch 16,
# AdamW lr 1e-4, wd 0.05, 50 epochs ~ 368k iters); mmovss trains semantic
# segmentation, so this config uses COCO-Stuff-171 semantic maps (one mask
# per class) with the paper's crop, optimiser and a poly schedule.
_base_ = [
    '../_base_/models/fcclip_convnext-l.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_80k.py',
]
crop_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.1, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
model = dict(data_preprocessor=dict(size=crop_size))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    _delete_=True, type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'query_feat': dict(decay_mult=0.), 'query_pos': dict(decay_mult=0.),
        'level_embed': dict(decay_mult=0.), 'norm': dict(decay_mult=0.)}),
    clip_grad=dict(max_norm=0.01, norm_type=2))
