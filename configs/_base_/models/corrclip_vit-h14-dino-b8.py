# CorrCLIP on OpenCLIP ViT-H/14 (`ViT-H-14` / `laion2b_s32b_b79k`, the reference's third
# setting in configs/base_config.py); spatial branch: blocks 2..29 of 32.
_base_ = ['./corrclip_vit-b16-dino-b8.py']
# the CLIP, named once (a child config that only sets these variables changes
# nothing: mmengine substitutes them where this file uses them)
clip_model = 'ViT-H-14'
clip_pretrained = 'laion2b_s32b_b79k'
model = dict(
    backbone=dict(model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=1024))
