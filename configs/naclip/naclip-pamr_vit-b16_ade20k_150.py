# NACLIP + PAMR on ade20k_150, following cfg_ade20k.py of github.com/sinahmr/NACLIP.
# Published ViT-B/16 mIoU: README.md of this folder.
_base_ = [
    '../_base_/models/naclip-pamr_vit-b16.py', '../_base_/datasets/ade20k_150.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
model = dict(
    vocabulary='{{fileDirname}}/../_base_/vocabularies/sclip/ade20k_150.txt',
    decode_head=dict(background_index=None))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 336), keep_ratio=True),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
