# Protocol 'sclip' (SCLIP) on ade20k_847: not among the 8 benchmarks of
# github.com/wangf3014/SCLIP @ b56bd301, so no published setting.
# mmovss uses the ade20k_150 setting (cfg_ade20k.py) with the benchmark's own
# class names (mmovss/vocab/names/ade20k_847.txt, through DatasetVocabularyHook).
_base_ = [
    '../../datasets/ade20k_847.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../training-free_pipelines.py'
]
test_pipeline = {{_base_.training_free_pipelines.short_side_336}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary=None,
    decode_head=dict(logit_scale=40.0, prob_thd=0.0, area_thd=None, background_index=None))
custom_hooks = [dict(type='DatasetVocabularyHook')]
