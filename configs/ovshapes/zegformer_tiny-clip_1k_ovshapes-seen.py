# ZegFormer on OVShapes: a small MaskFormer on the tiny CLIP's image tower
# (fine-tuned at 0.1x the learning rate, as the LSeg config), segment
# embeddings matched to the OVShapes tiny CLIP text embeddings, the frozen tiny
# CLIP image encoder on the masked crops (fusion; the 28 seen classes of the
# training vocabulary), 1k iterations.
# Backbone: ZegFormer starts from a pretrained backbone (ImageNet ResNet-101);
# OVShapes has no ImageNet, and its one pretrained image model is the tiny
# CLIP, whose image tower now stands in for it (blocks 0, 1, 2, 2 as the four
# maps, 8x8 patch grid; until 2026-12-07 a ResNet-18 trained from scratch).
# Fusion lambda 0.5 (paper 2/3). Both chosen on world seeds 11 and 12
# (configs/ovshapes/README.md, "ZegFormer and OVSeg on the tiny CLIP's image
# tower"): unseen 17.94 / 15.22 (ResNet-18) -> 34.46 / 25.82 (tiny CLIP,
# lambda 2/3) -> 37.09 / 28.84 (lambda 0.5, the best of 2/3, 1/2, 1/3 on both
# worlds; hIoU 45.09 / 37.27).
# Inference as the official MaskFormer.forward: the mask logits (8x8 here) are
# upsampled to the input before the crops and the sigmoid (upsample_masks=True;
# the head's default keeps them at the mask resolution, mmseg's order).
# Measured on world seeds 11 and 12 with the ResNet-18 of then (16x16 masks),
# the same checkpoints (configs/ovshapes/README.md, "FC-CLIP's inference"):
# unseen 14.77 -> 16.58, seen 17.86 -> 18.41, hIoU 16.16 -> 17.43.
#   python tools/train.py configs/ovshapes/zegformer_tiny-clip_1k_ovshapes-seen.py
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/ovshapes_1k.py',
]
model = dict(
    type='TwoStageEncoderDecoder',
    backbone={{_base_.tiny_clip_tower_finetuned}},
    decode_head=dict(
        _delete_=True,
        type='ZegFormerHead', in_channels=[128, 128, 128, 128], embed_dim=64,
        channels=64, mask_channels=64, num_queries=16, num_layers=3, num_heads=4,
        ffn_channels=256, mode='fusion', fusion_lambda=0.5, upsample_masks=True,
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
                     clip_grad=dict(max_norm=1.0),
                     paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
max_iters = 1000
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
