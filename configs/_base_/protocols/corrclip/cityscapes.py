# Protocol 'corrclip' (CorrCLIP) on cityscapes:
# cfg_city_scapes.py of github.com/zdk258/CorrCLIP (CorrCLIPv1) @ 103bc18: short side, slide
# window and prob_thd as there (the same as ProxyCLIP's, whose class-name files are used:
# the reference names ./configs/cls_*.txt files its repository does not hold), masks
# from its instance_mask_path data/region_masks/city.
_base_ = [
    '../../datasets/cityscapes.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_448}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/sclip/cityscapes.txt',
    decode_head=dict(
        mask_refinement=dict(generator=dict(mask_dir='data/region_masks/city')),
        prob_thd=0.0, background_index=None),
    test_cfg=dict(crop_size=(224, 224), stride=(112, 112)))
