# CAT-Seg on the OVShapes tiny CLIP, trained on the 28 seen classes only and
# evaluated on all 40 (seen / unseen / hIoU). The CAT-Seg recipe scaled down:
# Q/V fine-tuning of both CLIP towers at 0.1 x lr (the paper's 0.01 x lr is
# meant for 80k iterations; over 1000 it leaves CLIP almost unchanged and the
# model underfits objects: 6.0 hIoU instead of 27.5, see
# configs/ovshapes/README.md), a cost volume with one
# channel per prompt template (the 3 templates of the tiny CLIP), 2 aggregation
# layers on the 8x8 patch grid (window 4, 2x2 pooling in training), binary
# cross-entropy.
#   python tools/train.py configs/ovshapes/catseg_tiny-clip_1k_ovshapes-seen.py
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/ovshapes_1k.py',
]
clip_finetune = ('transformer.resblocks.*.attn.in_proj_weight', )
model = dict(
    backbone=dict(
        type='CATSegCLIPViT',
        out_indices=(0, 1),
        last_block_mode='maskclip',
        unfrozen=clip_finetune,
        attn_parts=('q', 'v')),
    text_encoder=dict(type='CATSegTextEncoder', unfrozen=clip_finetune, attn_parts=('q', 'v')),
    decode_head=dict(
        _delete_=True,
        type='CATSegHead',
        in_channels=(128, 128, 64),
        in_index=(0, 1, 2),
        channels=32,
        num_templates=3,
        text_guidance_channels=32,
        appearance_guidance_channels=32,
        decoder_channels=(32, 16),
        decoder_guidance_channels=(32, 16),
        decoder_guidance_proj_channels=(8, 8),
        num_layers=2,
        num_heads=4,
        window_size=4,
        pooling_size=(2, 2),
        test_pooling_size=(1, 1),
        attention='linear',
        pad_len=64,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=1.0),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1),
            'text_encoder': dict(lr_mult=0.1),
            'attn.in_proj_weight': dict(lr_mult=0.1, decay_mult=0.0),
        }))
max_iters = 1000
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_iters - 50, eta_min=0.0, by_epoch=False,
         begin=50, end=max_iters),
]
