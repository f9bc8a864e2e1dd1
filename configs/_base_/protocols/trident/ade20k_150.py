# Protocol 'trident' (Trident) on ade20k_150:
# cfg_ade20k.py of github.com/YuHengsss/Trident @ a93b346d (short side, prob_thd, backbone
# values; its class-name file equals the one used here with '; ' written ', ').
_base_ = [
    '../../datasets/ade20k_150.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 576), keep_ratio=True),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/ade20k_150.txt',
    backbone=dict(slide_crop=336, slide_stride=224, cos_fac=1.2,
                  refine_neg_cos=False, sam_splits=1),
    decode_head=dict(prob_thd=0.0, background_index=None))
