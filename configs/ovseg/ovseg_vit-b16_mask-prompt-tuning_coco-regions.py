# OVSeg mask prompt tuning of CLIP ViT-B/16 (mask prompt depth 3, CLIP
# frozen, only the prompts train) on masked region crops with noun
# pseudo-labels built by
#   python tools/ovseg/build_region_data.py MASK_CONFIG MASK_CKPT \
#       --captions data/coco/annotations/captions_train2017.json \
#       --images data/coco/train2017 --out data/ovseg_regions
_base_ = ['../_base_/default_runtime.py']
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
model = dict(
    type='MaskPromptTuner',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.32316305],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=0, size=(224, 224)),
    region_classifier=dict(
        type='RegionCLIPClassifier',
        clip=dict(type='OpenCLIPViT', model_name=clip_model, pretrained=clip_pretrained),
        crop_size=224, mask_prompt_depth=3),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                      pretrained=clip_pretrained, templates='vild'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=('img_path', 'img_shape', 'ori_shape',
                                          'flip', 'region_label')),
]
train_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='RegionCropDataset', data_root='data/ovseg_regions',
                 ann_file='regions.json', pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-2, weight_decay=0.0))
max_iters = 20000
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False,
                        begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
