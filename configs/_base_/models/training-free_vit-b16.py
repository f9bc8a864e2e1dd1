# Training-free dense CLIP segmentation on OpenAI's CLIP ViT-B/16 (open_clip
# `ViT-B-16` / `openai`): the common part of the SCLIP, NACLIP, ClearCLIP,
# MaskCLIP and ProxyCLIP configs. Nothing is trained; evaluate with
#   python tools/test.py CONFIG
# Offline: replace the tag by a local CLIP file (open_clip or OpenAI format):
#   --cfg-options model.backbone.pretrained=/path/to/ViT-B-16.pt \
#                 model.text_encoder.pretrained=/path/to/ViT-B-16.pt
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # CLIP's normalisation as written in the published training-free codes
    mean=[122.771, 116.746, 104.094],
    std=[68.501, 66.632, 70.323],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='TrainingFreeSegmentor',
    data_preprocessor=data_preprocessor,
    # the method's own class-name file, set by every benchmark config
    vocabulary=None,
    backbone=dict(
        type='TrainingFreeCLIPViT',
        model_name=clip_model,
        pretrained=clip_pretrained,
        last_block_mode='vanilla',
        # the published codes' geometry (see TrainingFreeCLIPViT)
        pos_embed_resize='scale_factor',
        incomplete_patches='drop'),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        templates='imagenet',  # CLIP's 80 ImageNet templates
        synonym_reduction='max',
        cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='TrainingFreeHead',
        in_channels=512,
        logit_scale=40.0,
        prob_thd=0.0,
        area_thd=None,
        background_index=None,
        pamr=None),  # e.g. dict(type='PAMR', num_iter=10, dilations=(8, 16))
    train_cfg=dict(),
    test_cfg=dict(
        mode='slide', crop_size=(224, 224), stride=(112, 112),
        crop_batch_size=8))
