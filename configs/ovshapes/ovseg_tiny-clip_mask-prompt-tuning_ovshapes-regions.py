# OVSeg's second training run on OVShapes: mask prompt tuning of the tiny CLIP
# (Liang et al., CVPR 2023, Sec. 3.3; the COCO recipe of
# configs/ovseg/ovseg_vit-b16_mask-prompt-tuning_coco-regions.py scaled to the
# 3-block, 64 px tiny CLIP). Prompts in all 3 blocks, CLIP frozen, only the
# prompts train, on the masked region crops that a trained OVSeg mask model
# proposes on the *training* images, pseudo-labelled with the caption nouns
# restricted to the 28 seen class names (no unseen name enters training):
#   python tools/ovseg/build_region_data.py configs/ovshapes/ovseg_tiny-clip_3k_ovshapes-seen.py \
#       MASK_CKPT --captions data/ovshapes/captions.json --images data/ovshapes/img_dir \
#       --file-prefix train/ --word-vocabulary SEEN_NAMES_TXT --out data/ovshapes_regions
#   python tools/train.py configs/ovshapes/ovseg_tiny-clip_mask-prompt-tuning_ovshapes-regions.py \
#       --cfg-options train_dataloader.dataset.data_root=data/ovshapes_regions
#   python tools/ovseg/merge_mask_prompts.py MASK_CKPT work_dirs/.../iter_1000.pth OUT.pth
# then test OUT.pth with ovseg-mpt_tiny-clip_3k_ovshapes-seen.py (configs/ovshapes/README.md).
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/default_runtime.py',
]
model = dict(
    _delete_=True,
    type='MaskPromptTuner',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[122.771, 116.746, 104.094],
        std=[68.501, 66.632, 70.323],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=0, size=(64, 64)),
    region_classifier=dict(
        type='RegionCLIPClassifier',
        clip=dict(type='OpenCLIPViT', model_name=None,
                  model_cfg={{_base_.tiny_clip_cfg}},
                  pretrained={{_base_.tiny_clip_weights}}),
        crop_size=64, mask_fill='mean', crop_style='cropmask',
        mask_prompt_depth=3),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=None,
                      model_cfg={{_base_.tiny_clip_cfg}},
                      pretrained={{_base_.tiny_clip_weights}},
                      templates={{_base_.templates}}))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),  # the checking loader (masks: 0 outside, 1 inside)
    dict(type='Resize', scale=(64, 64), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=('img_path', 'img_shape', 'ori_shape',
                                          'flip', 'region_label')),
]
train_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='RegionCropDataset', data_root='data/ovshapes_regions',
                 ann_file='regions.json', pipeline=train_pipeline))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-2, weight_decay=0.0))
max_iters = 1000
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False,
                        begin=0, end=max_iters)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
val_cfg = None
val_dataloader = None
val_evaluator = None
test_cfg = None
test_dataloader = None
test_evaluator = None
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters))
custom_hooks = [dict(type='DatasetVocabularyHook')]
# run_table.py: not one train + test cell (trains region crops, not a segmentor)
table_cell = False
