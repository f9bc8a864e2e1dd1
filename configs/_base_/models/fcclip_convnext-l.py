# FC-CLIP (Yu et al., NeurIPS 2023) on the frozen open_clip ConvNeXt-Large
# (`convnext_large_d_320` / `laion2b_s29b_b131k_ft_soup`): MSDeformAttn pixel
# decoder (6 layers), 9-layer masked-attention decoder with 250 queries,
# in-vocabulary classifier + mask-pooled CLIP out-of-vocabulary classifier,
# geometric ensemble alpha=0.4 (seen) / beta=0.8 (unseen).
clip_model = 'convnext_large_d_320'
clip_pretrained = 'laion2b_s29b_b131k_ft_soup'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)
model = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(type='OpenCLIPConvNeXt', model_name=clip_model,
                  pretrained=clip_pretrained, out_indices=(0, 1, 2, 3)),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                      pretrained=clip_pretrained, templates='vild',
                      synonym_reduction='max',
                      cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='FCCLIPHead',
        in_channels=[192, 384, 768, 1536],
        embed_dim=768,
        channels=256,
        pixel_decoder=dict(type='MSDeformAttnPixelDecoder', mask_channels=256,
                           num_layers=6, num_heads=8, num_points=4,
                           ffn_channels=1024),
        num_queries=250, num_layers=9, num_heads=8, ffn_channels=2048,
        seen_vocabulary='{{fileDirname}}/../../../mmovss/vocab/names/coco_stuff171.txt',
        alpha=0.4, beta=0.8,
        criterion=dict(type='MaskClassificationLoss', num_points=12544,
                       oversample_ratio=3.0, importance_sample_ratio=0.75,
                       no_object_weight=0.1)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
