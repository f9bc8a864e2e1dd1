# LSeg on the OVShapes tiny CLIP, trained on the 28 seen classes only and
# evaluated on all 40 (seen / unseen / hIoU). The LSeg recipe scaled down: the
# image encoder is trained (0.1 x lr), the text encoder frozen; DPT decoder on
# blocks 0, 1, 2, 2 of the 3-block tower, learnable temperature, bottleneck
# spatial regularisation, softmax cross-entropy. 1000 iterations, screened with the
# current tiny CLIP on world seeds 11 and 12 against 500 (README, "Schedules").
#   python tools/train.py configs/ovshapes/lseg_tiny-clip_1k_ovshapes-seen.py
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/ovshapes_1k.py',
]
model = dict(
    backbone={{_base_.tiny_clip_tower_finetuned}},
    decode_head=dict(
        _delete_=True,
        type='LSegHead',
        in_channels=128,
        in_index=(0, 1, 2, 3),
        embed_dim=64,
        channels=64,
        post_process_channels=(32, 64, 128, 128),
        patch_size=8,
        logit_scale=1 / 0.07,
        reg_block='bottleneck',
        reg_depth=2,
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         avg_non_ignore=True)))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
