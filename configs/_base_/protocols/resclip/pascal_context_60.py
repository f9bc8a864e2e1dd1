# Protocol 'resclip' (ResCLIP) on pascal_context_60:
# configs/cfg_context60.py of github.com/yvhangyang/ResCLIP @ 0e085f7.
_base_ = [
    '../../datasets/pascal_context_60.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/pascal_context_60.txt',
    backbone=dict(last_block_options=dict(
        temp_thd=0.3, rcs_weights=(2.0, 0.3), sfr_weights=(1.8, 0.7))),
    decode_head=dict(prob_thd=0.1, background_index=0),
    test_cfg=dict(
        _delete_=True, mode='slide', crop_size=(224, 224), stride=(112, 112),
        crop_batch_size=8))
