# CAT-Seg (Cho et al., CVPR 2024) on OpenAI CLIP ViT-B/16, following
# configs/vitb_384.yaml of github.com/KU-CVLAB/CAT-Seg:
# - CLIP sees every crop at 384x384 (24x24 patch grid); guidance for the
#   upsampling decoder from blocks 3 and 7, dense embeddings from a last block
#   with MaskCLIP's value path ('maskclip' mode: residual and FFN kept);
# - query and value projections of every attention layer of BOTH CLIP towers
#   are fine-tuned (CLIP_FINETUNE: attention), everything else is frozen;
# - one prompt template, 'A photo of a {} in the scene' (PROMPT_ENSEMBLE_TYPE:
#   single), so the cost volume has one channel per class;
# - 2 aggregation layers, 4 heads, hidden 128, window 12, linear class
#   attention padded to 256 classes, 2x2 pooling in training, none in testing;
# - per-pixel binary cross-entropy.
# The vocabulary follows the dataset (DatasetVocabularyHook).
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
# fnmatch patterns of the CLIP parameters that are trained (Q/V rows only)
clip_finetune = ('transformer.resblocks.*.attn.in_proj_weight', )
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # CLIP's normalisation (open_clip OPENAI_DATASET_MEAN/STD x 255)
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(384, 384))
model = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(
        type='CATSegCLIPViT',
        model_name=clip_model,
        pretrained=clip_pretrained,
        input_size=(384, 384),
        out_indices=(3, 7),
        last_block_mode='maskclip',
        frozen=True,
        unfrozen=clip_finetune,
        attn_parts=('q', 'v')),
    text_encoder=dict(
        type='CATSegTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        templates=['A photo of a {} in the scene'],
        synonym_reduction='max',
        unfrozen=clip_finetune,
        attn_parts=('q', 'v'),
        cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='CATSegHead',
        # blocks 3 and 7 (ViT width), dense joint-space embeddings
        in_channels=(768, 768, 512),
        in_index=(0, 1, 2),
        channels=128,
        num_templates=1,
        text_guidance_channels=128,
        appearance_guidance_channels=128,
        decoder_channels=(64, 32),
        decoder_guidance_channels=(256, 128),
        decoder_guidance_proj_channels=(32, 16),
        num_layers=2,
        num_heads=4,
        window_size=12,
        pooling_size=(2, 2),
        test_pooling_size=(1, 1),
        attention='linear',
        pad_len=256,
        # classes per chunk in the per-class stages (same result, less memory)
        class_chunk_size=64,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(),
    # CAT-Seg slides 384x384 windows with 1/3 overlap over the 640-short-side
    # image (plus a global view, not reproduced here).
    test_cfg=dict(
        mode='slide',
        crop_size=(384, 384),
        stride=(256, 256),
        crop_batch_size=4,
        resize_class_chunk=16))
custom_hooks = [dict(type='DatasetVocabularyHook')]
