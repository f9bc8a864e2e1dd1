# Protocol 'proxyclip' (ProxyCLIP) on coco_stuff171:
# cfg_coco_stuff164k.py of github.com/mc-lan/ProxyCLIP @ e7b767f.
_base_ = [
    '../../datasets/coco_stuff171.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/coco_stuff171.txt',
    decode_head=dict(prob_thd=0.0, background_index=None),
    test_cfg=dict(crop_size=(336, 336), stride=(112, 112)))
