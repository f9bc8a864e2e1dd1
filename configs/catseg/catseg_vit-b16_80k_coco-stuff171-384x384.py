# CAT-Seg ViT-B/16 trained on COCO-Stuff-171 (the recipe of configs/vitb_384.yaml
# and configs/config.yaml of github.com/KU-CVLAB/CAT-Seg):
# 384x384 crops of images resized to short side 384, flip, SSD colour jitter;
# batch 4 in total (the paper: 4 GPUs x 1); AdamW lr 2e-4, weight decay 1e-4,
# CLIP parameters at 0.01 x lr; cosine decay over 80k iterations, no warm-up;
# the gradient norm of the whole model clipped to 0.01.
#   python tools/train.py configs/catseg/catseg_vit-b16_80k_coco-stuff171-384x384.py
# Evaluate on any benchmark: python tools/test.py CONFIG CHECKPOINT --benchmark ade20k_847
_base_ = [
    '../_base_/models/catseg_vit-b16.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_adamw_80k.py',
]
crop_size = (384, 384)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='Resize', scale=(2048, 384), keep_ratio=True),  # short side 384
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=0.01, norm_type=2),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.01),
            'text_encoder': dict(lr_mult=0.01),
            # the fused Q/K/V matrices of CLIP: no decay, so the frozen K rows
            # stay exactly fixed (CAT-Seg decays Q and V by 1e-4 at lr 2e-6)
            'attn.in_proj_weight': dict(lr_mult=0.01, decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=80000, eta_min=0.0, by_epoch=False, begin=0,
         end=80000)
]
