# Protocol 'proxyclip' (ProxyCLIP) on voc20:
# cfg_voc20.py of github.com/mc-lan/ProxyCLIP @ e7b767f.
_base_ = [
    '../../datasets/voc20.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/clearclip/voc20.txt',
    decode_head=dict(prob_thd=0.0, background_index=None),
    test_cfg=dict(crop_size=(336, 336), stride=(112, 112)))
