# NACLIP (Hajimiri et al., WACV 2025) on SigLIP ViT-B/16 (open_clip `ViT-B-16-SigLIP` / `webli`,
# Zhai et al., ICCV 2023): the ViT-B/16 base with open_clip's timm-built tower (OpenCLIPTimmViT).
# SigLIP has no class token and pools with a learned latent query (MAP); the dense embeddings are
# each patch token through that pool on its own (value path, output projection, pooling MLP:
# MaskCLIP's argument, see mmovss/models/backbones/open_clip_timm_vit.py). Joint embedding 768-d,
# patch 16, SigLIP's normalisation (mean = std = 0.5); the text side uses open_clip's Hugging Face
# tokenizer `timm/ViT-B-16-SigLIP` (fetched with the weights). SigLIP 2: model_name
# 'ViT-B-16-SigLIP2' (same tower). The method's settings and protocol (`--benchmark KEY`) are
# unchanged. No paper reports NACLIP on SigLIP: there is no cited config.
# Offline: --cfg-options model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE
_base_ = ['./naclip_vit-b16.py']
clip_model = 'ViT-B-16-SigLIP'
clip_pretrained = 'webli'
model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(type='OpenCLIPTimmViT', model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=768))
