# SAN (Xu et al., CVPR 2023) on OpenAI's CLIP ViT-B/16 (open_clip `ViT-B-16` /
# `openai`): the 9 shallow CLIP blocks see the image at half resolution and
# feed a side-adapter ViT (240 wide, 8 blocks, 100 queries) at full
# resolution; the 3 deep blocks recognise the proposals through [SLS] tokens
# with attention biases. Sizes follow the paper and mmseg's
# `_base_/models/san_vit-b16.py`. The vocabulary follows the dataset
# (DatasetVocabularyHook). Offline: replace the tag by a local file in the
# three `pretrained` fields (backbone, text_encoder, decode_head.clip).
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=640,
    test_cfg=dict(size_divisor=32))
model = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(
        type='SANCLIPViT',
        model_name=clip_model,
        pretrained=clip_pretrained,
        out_indices=(2, 5, 8),
        out_origin=True,
        encoder_resolution=0.5,
        unfrozen=('positional_embedding', )),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        templates='vild',
        synonym_reduction='max',
        cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='SANHead',
        clip=dict(model_name=clip_model, pretrained=clip_pretrained),
        start_block=9,
        side_adapter=dict(
            embed_dims=240,
            patch_size=16,
            num_queries=100,
            num_layers=8,
            num_heads=6,
            mlp_ratio=4,
            fusion_index=(0, 1, 2, 3),
            pretrain_grid=40,
            decoder=dict(embed_channels=256, mlp_channels=256, num_mlp=3,
                         rescale_bias=True)),
        deep_supervision_idxs=(7, ),
        criterion=dict(
            type='MaskClassificationLoss',
            num_points=12544,
            oversample_ratio=3.0,
            importance_sample_ratio=0.75,
            no_object_weight=0.1)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
