# NACLIP on OpenCLIP ViT-H/14 trained on LAION-2B (open_clip `ViT-H-14` / `laion2b_s32b_b79k`): the
# ViT-B/16 base with the bigger tower; the method's settings (and its protocol, `--benchmark KEY`)
# are unchanged. Joint embedding 1024-d, patch 14.
# Offline: --cfg-options model.backbone.pretrained=FILE model.text_encoder.pretrained=FILE
_base_ = ['./naclip_vit-b16.py']
model = dict(
    backbone=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'),
    text_encoder=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'),
    decode_head=dict(in_channels=1024))
