# Protocol 'corrclip' (CorrCLIP) on pascal_context_459: not among the 8 benchmarks of
# github.com/zdk258/CorrCLIP (CorrCLIPv1) @ 103bc18, so no published setting.
# mmovss uses the pascal_context_59 setting (cfg_context59.py) with the benchmark's own class names
# (through DatasetVocabularyHook) and the masks of the same images
# (data/region_masks/context: the benchmark shares its validation images).
_base_ = [
    '../../datasets/pascal_context_459.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary=None,
    decode_head=dict(
        mask_refinement=dict(generator=dict(mask_dir='data/region_masks/context')),
        prob_thd=0.0, background_index=None),
    test_cfg=dict(crop_size=(336, 336), stride=(112, 112)))
custom_hooks = [dict(type='DatasetVocabularyHook')]
