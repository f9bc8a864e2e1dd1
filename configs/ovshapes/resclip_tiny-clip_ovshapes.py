# ResCLIP (Yang et al., CVPR 2025) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/resclip_vit-b16.py (main setting: NACLIP's reduced last block
# with RCS and SFR) on the tiny CLIP, logit scale 40, tau/lambda weights and
# temp_thd 0.3 of that base (its README's main setting). Scaled to the tiny CLIP:
# * Gaussian std (NACLIP's Omega and SFR's smoothing): 5 patches on the 14 x 14 grid
#   of 224-px windows -> 5 x 8 / 14 = 2.86 patches on the 8 x 8 grid;
# * RCS blocks: ViT-B/16's blocks 5..8 of 12 end at 50-75 % of the depth; of the
#   tiny CLIP's 3 blocks, block 1 (67 %) is the only one in that range -> (1, );
# * SFR's PAMR dilations (8, 16) px = half a patch and a patch of ViT-B/16 -> (4, 8).
# Common settings (whole-image inference instead of 224/112 windows, the tiny CLIP's
# prompts, no background): ../_base_/models/training-free_tiny-clip.py. As in the
# code, SFR gives name 0 (here `sky`) to pixels below temp_thd (on ADE20K: `wall`).
#   python tools/test.py configs/ovshapes/resclip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    backbone=dict(
        last_block_mode='resclip',
        last_block_options=dict(
            gaussian_std={{_base_.naclip_gaussian_std}},
            rcs_layers=(1, ),
            rcs_weights=(2.0, 0.3),
            sfr_weights=(1.8, 0.7),
            temp_thd=0.3,
            delete_same_entity=True,
            use_rcs=True,
            use_sfr=True,
            sfr_pamr=dict(type='PAMR', num_iter=10, dilations=(4, 8)))),
    decode_head=dict(logit_scale=40.0))
