# NACLIP (Hajimiri et al., WACV 2025) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/naclip_vit-b16.py on the tiny CLIP: key-key attention plus a
# Gaussian neighbourhood bias in the last block, no residual, no FFN; logit scale 40.
# Scaled to the grid: NACLIP's std of 5 patches was chosen for the 14 x 14 grid of
# its 224-px windows (ViT-B/16); the tiny CLIP sees an 8 x 8 grid, so the std is
# 5 x 8 / 14 = 2.86 patches (the same fraction of the window). Common settings
# (whole-image inference instead of 224/112 windows, the tiny CLIP's prompts, no
# background): ../_base_/models/training-free_tiny-clip.py.
#   python tools/test.py configs/ovshapes/naclip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    backbone=dict(
        last_block_mode='naclip',
        last_block_options=dict(gaussian_std={{_base_.naclip_gaussian_std}})),
    decode_head=dict(logit_scale=40.0))
