# Protocol 'resclip' (ResCLIP) on pascal_context_459: not among the 8 benchmarks of
# github.com/yvhangyang/ResCLIP @ 0e085f7, so no published setting.
# mmovss uses the pascal_context_59 setting (cfg_context59.py) with the benchmark's own
# class names (mmovss/vocab/names/pascal_context_459.txt, through DatasetVocabularyHook).
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
    backbone=dict(last_block_options=dict(
        temp_thd=0.25, rcs_weights=(2.0, 0.4), sfr_weights=(1.8, 0.7))),
    decode_head=dict(prob_thd=0.0, background_index=None),
    test_cfg=dict(
        _delete_=True, mode='slide', crop_size=(224, 224), stride=(112, 112),
        crop_batch_size=8))
custom_hooks = [dict(type='DatasetVocabularyHook')]
