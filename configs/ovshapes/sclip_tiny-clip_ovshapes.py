# SCLIP (Wang et al., ECCV 2024) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/sclip_vit-b16.py on the tiny CLIP: correlative self-attention
# softmax(q q^T s) + softmax(k k^T s) in the last block, residual and FFN kept;
# logit scale 40, no PAMR (SCLIP's defaults). Common settings (whole-image inference
# instead of 224/112 windows, the tiny CLIP's prompts, no background):
# ../_base_/models/training-free_tiny-clip.py. Nothing depends on the token grid.
#   python tools/test.py configs/ovshapes/sclip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    backbone=dict(last_block_mode='sclip'),
    decode_head=dict(logit_scale=40.0))
