# Protocol 'resclip' (ResCLIP) on voc20:
# configs/cfg_voc20.py of github.com/yvhangyang/ResCLIP @ 0e085f7.
# The code's config disables sliding windows (slide_crop=0): whole image.
_base_ = [
    '../../datasets/voc20.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/voc20.txt',
    backbone=dict(last_block_options=dict(
        temp_thd=0.1, rcs_weights=(2.0, 0.6), sfr_weights=(2.1, 0.6))),
    decode_head=dict(prob_thd=0.0, background_index=None),
    test_cfg=dict(_delete_=True, mode='whole'))
