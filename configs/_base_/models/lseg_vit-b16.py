# LSeg (Li et al., ICLR 2022) on OpenAI CLIP ViT-B/16, after
# modules/models/lseg_net.py of github.com/isl-org/lang-seg:
# - image encoder: the CLIP ViT, trained (except ln_post / proj, which LSeg
#   does not use), four blocks (LSeg's ViT-B hooks 2, 5, 8, 11) through a DPT
#   decoder (256 channels, BN in the fusion blocks) to 512-d per-pixel
#   embeddings at half resolution;
# - frozen CLIP text encoder on the bare class names (no prompt template);
# - logits tau * cos(pixel, text) with a learnable tau starting at 1/0.07,
#   spatial regularisation (BottleneckBlock x 2, LeakyReLU), 2x upsampling,
#   softmax cross-entropy.
# Differences to the published model: LSeg's image encoder is an ImageNet
# ViT-L/16 (timm) next to CLIP ViT-B/32's text encoder; here both towers come
# from the same open_clip model, and DPT's readout is 'ignore' (the CLIP
# backbone returns patch maps only).
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(480, 480))
model = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(
        type='OpenCLIPViT',
        model_name=clip_model,
        pretrained=clip_pretrained,
        out_indices=(2, 5, 8, 11),
        frozen=True,
        # the trainable part of the image encoder (a config choice)
        unfrozen=('conv1.*', 'class_embedding', 'positional_embedding', 'ln_pre.*',
                  'transformer.*')),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        templates=['{}'],
        synonym_reduction='max',
        cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='LSegHead',
        in_channels=768,
        in_index=(0, 1, 2, 3),
        embed_dim=512,
        channels=256,
        post_process_channels=(96, 192, 384, 768),
        patch_size=16,
        logit_scale=1 / 0.07,
        learn_logit_scale=True,
        reg_block='bottleneck',
        reg_depth=2,
        reg_act_cfg=dict(type='LeakyReLU'),
        norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(
        mode='slide',
        crop_size=(480, 480),
        stride=(320, 320),
        crop_batch_size=4,
        resize_class_chunk=16))
custom_hooks = [dict(type='DatasetVocabularyHook')]
