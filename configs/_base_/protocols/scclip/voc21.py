# Protocol 'scclip' (SC-CLIP) on voc21:
# configs/cfg_voc21.py of github.com/SuleBai/SC-CLIP @ 0417ba9.
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
    decode_head=dict(
        logit_scale=50.0, prob_thd=0.15, area_thd=0.1,
        background_index=0),
    test_cfg=dict(
        _delete_=True, mode='slide', crop_size=(224, 224), stride=(112, 112),
        crop_batch_size=8))
