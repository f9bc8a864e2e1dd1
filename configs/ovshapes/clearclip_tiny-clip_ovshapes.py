# ClearCLIP (Lan et al., ECCV 2024) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/clearclip_vit-b16.py on the tiny CLIP: softmax(q q^T s)
# attention in the last block, no residual, no FFN; logit scale 50 (ClearCLIP's
# defaults). Common settings (whole-image inference instead of 448/224 windows, the
# tiny CLIP's prompts, no background): ../_base_/models/training-free_tiny-clip.py.
# Nothing depends on the token grid.
#   python tools/test.py configs/ovshapes/clearclip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    backbone=dict(last_block_mode='clearclip'),
    decode_head=dict(logit_scale=50.0))
