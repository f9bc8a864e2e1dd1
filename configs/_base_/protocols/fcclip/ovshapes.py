# Protocol 'fcclip' (FC-CLIP, released models) on ovshapes:
# FC-CLIP does not evaluate it; mmovss's choice: the dataset's own pipeline (small synthetic
# images, no resize), its names, the semantic-only setting mask_upsample='logits'.
_base_ = [
    '../../datasets/ovshapes.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(vocabulary=None, decode_head=dict(mask_upsample='logits'))
