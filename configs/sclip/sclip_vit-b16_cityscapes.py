# SCLIP on cityscapes, following cfg_city_scapes.py of github.com/wangf3014/SCLIP.
# Published ViT-B/16 mIoU: README.md of this folder.
_base_ = [
    '../_base_/models/sclip_vit-b16.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
model = dict(
    vocabulary='{{fileDirname}}/../_base_/vocabularies/sclip/cityscapes.txt',
    decode_head=dict(background_index=None))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 560), keep_ratio=True),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
