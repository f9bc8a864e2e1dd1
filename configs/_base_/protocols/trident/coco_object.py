# Protocol 'trident' (Trident) on coco_object:
# cfg_coco_object.py of github.com/YuHengsss/Trident @ a93b346d (short side, prob_thd, backbone
# values; its class-name file equals the one used here with '; ' written ', ').
_base_ = [
    '../../datasets/coco_object.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_448}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/proxyclip/coco_object.txt',
    backbone=dict(slide_crop=336, slide_stride=224, cos_fac=1.2,
                  refine_neg_cos=True, sam_splits=1),
    decode_head=dict(prob_thd=0.25, background_index=0))
