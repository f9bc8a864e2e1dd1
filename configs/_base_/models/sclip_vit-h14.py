# SCLIP on OpenCLIP ViT-H/14 trained on LAION-2B (open_clip `ViT-H-14` / `laion2b_s32b_b79k`): the
# ViT-B/16 base with the bigger tower; the method's settings (and its protocol, `--benchmark KEY`)
# are unchanged. Joint embedding 1024-d, patch 14.
# Offline: --cfg-options model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE
_base_ = ['./sclip_vit-b16.py']
# the CLIP, named once (a child config that only sets these variables changes
# nothing: mmengine substitutes them where this file uses them)
clip_model = 'ViT-H-14'
clip_pretrained = 'laion2b_s32b_b79k'
model = dict(
    backbone=dict(model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=1024))
