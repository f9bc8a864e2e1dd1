# OVSeg R-101c + mask-adapted CLIP ViT-B/16 as released by its authors
# (github.com/facebookresearch/ov-seg, commit 36f49d49): checkpoint ovseg_R101c_vitB16_ft_mpt.pth
# (GETTING_STARTED.md, Google Drive, md5 c746f4...), configs/ovseg_R101c_vitB_bs32_120k.yaml.
# It holds the whole model, the fine-tuned + mask-prompt-tuned CLIP included. Convert it first:
#   python tools/model_converters/ovseg_official_to_mmovss.py \
#       ovseg_R101c_vitB16_ft_mpt.pth ovseg_r101c_vitb16.pth
#   python tools/test.py THIS_CONFIG ovseg_r101c_vitb16.pth --benchmark ade20k_150
# --benchmark takes the protocol 'ovseg-r101c' (configs/_base_/protocols/ovseg-r101c/): the
# released per-benchmark CLIP_ENSEMBLE_WEIGHT (0.6 PASCAL Context, 0.45 VOC-20, else 0.7; the
# README gives them with the Swin-B commands, the R-101c model shares the evaluation code)
# and this model's test resize (shortest edge 512, longest <= 2048), and on the five benchmarks
# the released code evaluates (ADE-150/847, PC-59/459, VOC-20) the class names of the released
# evaluation (OVSeg's registered names, _base_/vocabularies/ovseg/, each ONE prompt:
# text_encoder.whole_names=True) and its PIL resize (detectron2's ResizeShortestEdge);
# elsewhere the benchmark's names and mmseg's (OpenCV) resize.
# What this config sets, as released (differences from ../_base_/models/ovseg_r101c_vit-b16.py):
# * backbone: DeepLab's ResNet-101 (stem 64-64-128, RES5_MULTI_GRID [1, 2, 4], FrozenBN) =
#   mmseg's ResNetV1c with stem_channels=128, multi_grid=(1, 2, 4), frozen BN;
# * segment-embedding MLP 256 -> 1024 -> 512 (EMBED_HIDDEN_DIM 1024); GroupNorm 32 groups;
# * mask logits upsampled to the image before the crops and the per-pixel scores;
# * crops: integer box slice, filled with CLIP's mean outside the mask, bicubic resize to 224
#   (mask: nearest); MASK_THR 0.5; CLIP logits x 100 (not CLIP's logit_scale); the first
#   mask prompt replaces the patch embeddings before the position embedding;
# * CLIP weights (image and text) come from the checkpoint (QuickGELU, OpenAI layout).
_base_ = ['../_base_/datasets/ade20k_150.py', '../_base_/default_runtime.py',
          '../_base_/protocols/detectron2_pipelines.py']
protocol = 'ovseg-r101c'
clip_model = 'ViT-B-16'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)
model = dict(
    type='TwoStageEncoderDecoder',
    data_preprocessor=data_preprocessor,
    # the released evaluation's ADE-150 names (detectron2's ade20k_sem_seg_val)
    vocabulary='{{fileDirname}}/../_base_/vocabularies/ovseg/ade20k_150.txt',
    backbone=dict(
        type='ResNetV1c', depth=101, stem_channels=128, base_channels=64,
        multi_grid=(1, 2, 4), out_indices=(0, 1, 2, 3), style='pytorch',
        norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model, pretrained=None,
                      quick_gelu=True, templates='vild', whole_names=True),
    decode_head=dict(
        type='OVSegHead',
        in_channels=[256, 512, 1024, 2048], embed_dim=512,
        channels=256, mask_channels=256, num_queries=100, num_layers=6,
        num_heads=8, ffn_channels=2048, dropout=0.1, temperature=0.01,
        embed_layers=2, embed_channels=1024, ensemble_weight=0.7,
        upsample_masks=True, norm_groups=32,
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name=clip_model, pretrained=None,
                      quick_gelu=True),
            crop_size=224, mask_threshold=0.5, mask_fill='mean', crop_style='cropmask',
            mask_prompt_depth=3, crop_resize='slice', logit_scale=100.0,
            mask_prompt_at_embed=True),
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
custom_hooks = []  # the vocabulary is the released evaluation's, not the dataset's
# the released test resize of this config: detectron2's ResizeShortestEdge on PIL images,
# shortest edge 512, longest <= 2048 (INPUT.MIN/MAX_SIZE_TEST of the yaml, L75-76), as the
# protocol's on ADE-150 (_base_/protocols/ovseg-r101c/ade20k_150.py)
test_pipeline = {{_base_.detectron2_pipelines.short_512_long_2048}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
train_dataloader = None
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
