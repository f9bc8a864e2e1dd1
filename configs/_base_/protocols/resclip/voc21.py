# Protocol 'resclip' (ResCLIP) on voc21:
# configs/cfg_voc21.py of github.com/yvhangyang/ResCLIP @ 0e085f7.
# The code's config disables sliding windows (slide_crop=0): whole image.
_base_ = [
    '../../datasets/voc21.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/voc21.txt',
    backbone=dict(last_block_options=dict(
        temp_thd=0.5, rcs_weights=(2.0, 0.3), sfr_weights=(2.2, 0.7))),
    decode_head=dict(prob_thd=0.1, background_index=0),
    test_cfg=dict(_delete_=True, mode='whole'))
