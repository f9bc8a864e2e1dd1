# ClearCLIP on OpenAI's CLIP ViT-L/14 (open_clip `ViT-L-14` / `openai`, QuickGELU): the ViT-B/16
# base with the bigger tower; the method's settings (and its protocol, `--benchmark KEY`) are
# unchanged. Joint embedding 768-d, patch 14.
# Offline: --cfg-options model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE
_base_ = ['./clearclip_vit-b16.py']
# the CLIP, named once (a child config that only sets these variables changes
# nothing: mmengine substitutes them where this file uses them)
clip_model = 'ViT-L-14'
clip_pretrained = 'openai'
model = dict(
    backbone=dict(model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=768))
