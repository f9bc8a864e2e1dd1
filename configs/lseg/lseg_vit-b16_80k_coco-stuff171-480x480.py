# LSeg ViT-B/16 trained on COCO-Stuff-171 with LSeg's optimisation recipe
# (modules/lsegmentation_module.py and train.sh of github.com/isl-org/lang-seg):
# SGD, momentum 0.9, weight decay 1e-4, lr 0.004 / 16 x batch for the image
# encoder and 10x that for the decoder, poly decay (power 0.9); 480x480 crops
# of images randomly rescaled around short side 520 (base size 520 with
# scales 0.5-2.0), flip; batch 4. LSeg gives no COCO-Stuff schedule: 80k
# iterations, as CAT-Seg.
#   python tools/train.py configs/lseg/lseg_vit-b16_80k_coco-stuff171-480x480.py
# Evaluate on any benchmark: python tools/test.py CONFIG CHECKPOINT --benchmark ade20k_847
_base_ = [
    '../_base_/models/lseg_vit-b16.py',
    '../_base_/datasets/coco_stuff171.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k.py',
]
crop_size = (480, 480)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomResize', scale=(2080, 520), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=None,
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)
]
