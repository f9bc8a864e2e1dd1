# Protocol 'ovseg' (OVSeg, released models) on pascal_context_60:
# CLIP_ENSEMBLE_WEIGHT 0.7 of the released configs (no per-benchmark value released;
# GETTING_STARTED.md of github.com/facebookresearch/ov-seg @ 36f49d49).
_base_ = [
    '../../datasets/pascal_context_60.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(vocabulary=None, decode_head=dict(ensemble_weight=0.7))
