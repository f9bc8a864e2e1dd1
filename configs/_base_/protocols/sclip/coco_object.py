# Protocol 'sclip' (SCLIP) on coco_object:
# cfg_coco_object.py of github.com/wangf3014/SCLIP @ b56bd301.
_base_ = [
    '../../datasets/coco_object.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/coco_object.txt',
    decode_head=dict(logit_scale=50.0, prob_thd=0.1, area_thd=None, background_index=0))
