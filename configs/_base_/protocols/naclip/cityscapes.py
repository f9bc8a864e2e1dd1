# Protocol 'naclip' (NACLIP, NACLIP + PAMR) on cityscapes:
# cfg_city_scapes.py of github.com/sinahmr/NACLIP @ 0cac3a65.
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
    decode_head=dict(prob_thd=0.0, background_index=None),
    test_cfg=dict(
        _delete_=True, mode='slide', crop_size=(224, 224), stride=(112, 112),
        crop_batch_size=8))
