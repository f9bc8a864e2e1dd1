# NACLIP (Hajimiri et al., WACV 2025) on EVA02-CLIP ViT-B/16 (open_clip `EVA02-B-16` /
# `merged2b_s8b_b131k`, Sun et al., 2023): the ViT-B/16 base with open_clip's timm-built tower
# (OpenCLIPTimmViT: RoPE + absolute position embeddings, SwiGLU MLP, class-token pooling). The
# method's settings and its protocol (`--benchmark KEY`) are unchanged; joint embedding 512-d,
# patch 16, CLIP's normalisation. No paper reports NACLIP on EVA02-CLIP: there is no cited config.
# Offline: --cfg-options model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE
_base_ = ['./naclip_vit-b16.py']
clip_model = 'EVA02-B-16'
clip_pretrained = 'merged2b_s8b_b131k'
model = dict(
    backbone=dict(type='OpenCLIPTimmViT', model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=512))
