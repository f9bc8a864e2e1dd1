# SAM + CLIP (training-free) on OVShapes, evaluated on all 40 classes (seen /
# unseen / hIoU; nothing is trained, so "seen" only names the split).
# No SAM weights exist offline: the mask generator is a tiny SAM (SAM's
# architecture: 64 px input, patch 8, one 32-wide encoder block, a 32-wide
# one-layer two-way decoder) with RANDOM weights (seed 0), as in
# tests/test_sam_clip.py. Its masks are meaningless, so this row measures the
# pipeline (automatic mask generation -> masked-crop classification by the tiny
# CLIP + mask pooling of its MaskCLIP dense embeddings, geometric mean w = 0.5
# -> overlaps resolved by confidence x predicted IoU -> uncovered pixels from
# the dense CLIP prediction), not SAM's quality. The paper's SAM filters
# (predicted IoU >= 0.88, stability >= 0.95) reject every mask of the random
# SAM, which would leave only the dense fallback, so both are off here, and a
# 4x4 point grid keeps CPU time low (about 0.06 CPU-s per image). With real
# weights use the SAM settings of ../_base_/models/sam_clip_vit-h_vit-b16.py:
#   --cfg-options model.decode_head.mask_generator.model_cfg=None \
#       model.decode_head.mask_generator.model_type=vit_b \
#       model.decode_head.mask_generator.checkpoint=sam_vit_b_01ec64.pth
#   python tools/test.py configs/ovshapes/sam-clip_random-tiny-sam-tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='TwoStageEncoderDecoder',
    backbone=dict(out_indices=(-1, ), last_block_mode='maskclip'),
    decode_head=dict(
        _delete_=True,
        type='SAMCLIPHead',
        in_channels=64,
        mask_generator=dict(
            type='SAMMaskGenerator',
            model_cfg=dict(img_size=64, patch_size=8, embed_dim=32, depth=1,
                           num_heads=2, out_chans=32, decoder_depth=1, seed=0),
            generator_cfg=dict(points_per_side=4, pred_iou_thresh=0.0,
                               stability_score_thresh=0.0,
                               min_mask_region_area=0)),
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name=None,
                      model_cfg={{_base_.tiny_clip_cfg}},
                      pretrained={{_base_.tiny_clip_weights}}),
            crop_size=64, mask_fill='mean', crop_style='cropmask'),
        classifiers=('crop', 'pool'),
        crop_weight=0.5,
        use_mask_score=True))
train_dataloader = None
