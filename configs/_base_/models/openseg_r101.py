# OpenSeg (Ghiasi et al., ECCV 2022) on ResNet-101: FPN + 128 cross-attention
# queries, proposal-weighted region features; class-agnostic Dice loss
# (alpha) + region-word grounding loss; CLIP ViT-B/16 text encoder (the paper
# uses ALIGN's, which open_clip does not ship).
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)
model = dict(
    type='OpenSegEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(
        type='ResNetV1c', depth=101, num_stages=4, out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True), norm_eval=False,
        style='pytorch', contract_dilation=True,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet101_v1c')),
    # no disk cache: every batch embeds a different set of caption words
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                      pretrained=clip_pretrained, templates='single'),
    decode_head=dict(
        type='OpenSegHead',
        in_channels=[256, 512, 1024, 2048],
        embed_dim=512, channels=256, mask_channels=256, num_queries=128,
        num_layers=6, num_heads=8, ffn_channels=2048, dropout=0.1,
        temperature=0.01,
        mask_loss=dict(type='ClassAgnosticDiceLoss', loss_weight=1.0),
        grounding_loss=dict(type='RegionWordGroundingLoss', temperature=0.07)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
