# Open-vocabulary encoder-decoder on OpenAI's CLIP ViT-B/16 (open_clip
# `ViT-B-16` / `openai`) with the plain cosine head (dense CLIP embeddings vs
# class-name embeddings). The vocabulary follows the dataset's METAINFO
# through DatasetVocabularyHook, so evaluating another benchmark only needs
# another dataset `_base_`; set `model.vocabulary` to fix it instead, e.g.
#   --cfg-options model.vocabulary=/path/to/names.txt
# Offline: replace the tag by a local checkpoint file, e.g.
#   --cfg-options model.backbone.pretrained=/path/to/ViT-B-16.pt \
#                 model.text_encoder.pretrained=/path/to/ViT-B-16.pt
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # CLIP's normalisation (open_clip OPENAI_DATASET_MEAN/STD x 255)
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=16)
model = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(
        type='OpenCLIPViT',
        model_name=clip_model,
        pretrained=clip_pretrained,
        out_indices=(-1, )),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        model_name=clip_model,
        pretrained=clip_pretrained,
        templates='vild',
        synonym_reduction='max',
        cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(type='CLIPCosineHead', in_channels=512),
    train_cfg=dict(),
    test_cfg=dict(
        mode='slide',
        crop_size=(224, 224),
        stride=(112, 112),
        crop_batch_size=8,
        resize_class_chunk=16))
custom_hooks = [dict(type='DatasetVocabularyHook')]
