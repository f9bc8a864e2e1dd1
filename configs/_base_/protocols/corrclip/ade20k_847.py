# Protocol 'corrclip' (CorrCLIP) on ade20k_847: not among the 8 benchmarks of
# github.com/zdk258/CorrCLIP (CorrCLIPv1) @ 103bc18, so no published setting.
# mmovss uses the ade20k_150 setting (cfg_ade20k.py) with the benchmark's own class names
# (through DatasetVocabularyHook) and the masks of the same images
# (data/region_masks/ade: the benchmark shares its validation images).
_base_ = [
    '../../datasets/ade20k_847.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_448}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary=None,
    decode_head=dict(
        mask_refinement=dict(generator=dict(mask_dir='data/region_masks/ade')),
        prob_thd=0.0, background_index=None),
    test_cfg=dict(crop_size=(336, 336), stride=(112, 112)))
custom_hooks = [dict(type='DatasetVocabularyHook')]
