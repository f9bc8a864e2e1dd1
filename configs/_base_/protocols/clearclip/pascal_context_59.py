# Protocol 'clearclip' (ClearCLIP, MaskCLIP) on pascal_context_59:
# cfg_context59.py of github.com/mc-lan/ClearCLIP @ ad68a404.
_base_ = [
    '../../datasets/pascal_context_59.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_448}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/pascal_context_59.txt',
    decode_head=dict(prob_thd=0.0, background_index=None),
    test_cfg=dict(crop_size=(448, 448), stride=(224, 224)))
