# ZegFormer (Ding et al., CVPR 2022): MaskFormer on ResNet-101 (ImageNet) with
# 100 queries, 6 decoder layers; segment embeddings matched to CLIP ViT-B/16
# text embeddings (tau = 0.01, learned "no object"); the CLIP ViT-B/16 image
# encoder classifies masked crops; fusion lambda = 2/3 (paper Eq. 4).
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)
model = dict(
    type='TwoStageEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(
        type='ResNetV1c', depth=101, num_stages=4, out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False,
        style='pytorch', contract_dilation=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet101_v1c')),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                      pretrained=clip_pretrained, templates='vild',
                      cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='ZegFormerHead',
        in_channels=[256, 512, 1024, 2048],
        embed_dim=512,
        channels=256, mask_channels=256, num_queries=100, num_layers=6,
        num_heads=8, ffn_channels=2048, dropout=0.1, temperature=0.01,
        mode='fusion', fusion_lambda=2. / 3., calibration=0.0,
        seen_vocabulary='{{fileDirname}}/../../../mmovss/vocab/names/coco_stuff171.txt',
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name=clip_model,
                      pretrained=clip_pretrained),
            crop_size=224, mask_fill='mean', crop_style='cropmask'),
        criterion=dict(
            type='MaskClassificationLoss', num_points=12544, no_object_weight=0.1,
            match_costs=[dict(type='ClassificationCost', weight=1.0),
                         dict(type='CrossEntropyLossCost', weight=20.0, use_sigmoid=True),
                         dict(type='DiceCost', weight=1.0, pred_act=True, eps=1.0)],
            loss_cls=dict(type='CrossEntropyLoss', loss_weight=1.0, loss_name='loss_cls'),
            loss_mask=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                           loss_weight=20.0, loss_name='loss_mask'),
            loss_dice=dict(type='DiceLoss', naive_dice=True, eps=1.0, ignore_index=None,
                           loss_weight=1.0, loss_name='loss_dice'))),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
