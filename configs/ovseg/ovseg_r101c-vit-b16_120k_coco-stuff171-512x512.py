# OVSeg R-101c + mask-adapted CLIP ViT-B/16 (the released
# ovseg_R101c_vitB_bs32_120k recipe): mask model trained on COCO-Stuff-171,
# 512x512 crops, batch 32, AdamW lr 2e-4, wd 1e-4, backbone lr x 0.1, 120k
# iterations, poly decay, gradient clipping 0.01. The mask-adapted CLIP is
# trained separately (ovseg_vit-b16_mask-prompt-tuning_coco-regions.py) and
# loaded into decode_head.region_classifier (load its checkpoint with
# --cfg-options model.decode_head.region_classifier.clip.pretrained=... for
# a fine-tuned CLIP, or merge the prompt weights into the checkpoint).
_base_ = [
    '../_base_/models/ovseg_r101c_vit-b16.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_80k.py',
]
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
model = dict(data_preprocessor=dict(size=crop_size, size_divisor=None))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4),
    clip_grad=dict(_delete_=True, max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1),
                                    'norm': dict(decay_mult=0.),
                                    'query_pos': dict(decay_mult=0.)}))
max_iters = 120000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=1500, end=max_iters, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10000)
