# Protocol 'ovseg' (OVSeg, released models) on pascal_context_59:
# MODEL.CLIP_ADAPTER.CLIP_ENSEMBLE_WEIGHT 0.6 of the released evaluation command for this
# benchmark (GETTING_STARTED.md of github.com/facebookresearch/ov-seg @ 36f49d49).
_base_ = [
    '../../datasets/pascal_context_59.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(vocabulary=None, decode_head=dict(ensemble_weight=0.6))
