# SAM + CLIP (training-free): SAM ViT-H automatic masks (checkpoint supplied by
# the user: --cfg-options model.decode_head.mask_generator.checkpoint=PATH);
# each mask classified by CLIP ViT-B/16 on its masked crop and by mask
# pooling of MaskCLIP dense features (geometric mean, w = 0.5); overlaps
# resolved by confidence x SAM's predicted IoU; uncovered pixels take the
# dense CLIP prediction.
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=16)
model = dict(
    type='TwoStageEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(type='OpenCLIPViT', model_name=clip_model, pretrained=clip_pretrained,
                  out_indices=(-1, ), last_block_mode='maskclip'),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                      pretrained=clip_pretrained, templates='imagenet',
                      cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='SAMCLIPHead',
        in_channels=512,
        mask_generator=dict(
            type='SAMMaskGenerator', model_type='vit_h', checkpoint=None,
            generator_cfg=dict(points_per_side=32, pred_iou_thresh=0.88,
                               stability_score_thresh=0.95, min_mask_region_area=100)),
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name=clip_model, pretrained=clip_pretrained),
            crop_size=224, mask_fill='mean', crop_style='cropmask'),
        classifiers=('crop', 'pool'), crop_weight=0.5, use_mask_score=True),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
