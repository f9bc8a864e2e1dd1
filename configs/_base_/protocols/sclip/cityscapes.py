# Protocol 'sclip' (SCLIP) on cityscapes:
# cfg_city_scapes.py of github.com/wangf3014/SCLIP @ b56bd301.
_base_ = [
    '../../datasets/cityscapes.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/cityscapes.txt',
    decode_head=dict(logit_scale=40.0, prob_thd=0.0, area_thd=None, background_index=None))
