# ZegFormer on OVShapes: a small MaskFormer on a tiny ResNet-18 (trained from
# scratch), segment embeddings matched to the OVShapes tiny CLIP text
# embeddings, the tiny CLIP image encoder on the masked crops (fusion,
# lambda 2/3; the 28 seen classes of the training vocabulary), 1k iterations.
# Inference as the official MaskFormer.forward: the 16x16 mask logits are
# upsampled to the input before the crops and the sigmoid (upsample_masks=True;
# the head's default keeps them at 1/4, mmseg's order). Measured on world seeds
# 11 and 12, the same checkpoints (configs/ovshapes/README.md, "FC-CLIP's
# inference"): unseen 14.77 -> 16.58, seen 17.86 -> 18.41, hIoU 16.16 -> 17.43.
#   python tools/train.py configs/ovshapes/zegformer_tiny-clip_1k_ovshapes-seen.py
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/ovshapes_1k.py',
]
model = dict(
    type='TwoStageEncoderDecoder',
    backbone=dict(_delete_=True, type='ResNetV1c', depth=18, stem_channels=32,
                  base_channels=32, norm_cfg=dict(type='BN', requires_grad=True)),
    decode_head=dict(
        _delete_=True,
        type='ZegFormerHead', in_channels=[32, 64, 128, 256], embed_dim=64,
        channels=64, mask_channels=64, num_queries=16, num_layers=3, num_heads=4,
        ffn_channels=256, mode='fusion', upsample_masks=True,
        seen_vocabulary={{_base_.seen_classes}},
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name=None,
                      model_cfg={{_base_.tiny_clip_cfg}},
                      pretrained={{_base_.tiny_clip_weights}}),
            crop_size=64),
        criterion=dict(type='MaskClassificationLoss', num_points=1024)))
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=1.0))
max_iters = 1000
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
