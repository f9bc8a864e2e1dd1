# CorrCLIP on MetaCLIP ViT-L/14 (open_clip `ViT-L-14-quickgelu` / `metaclip_fullcc`, the
# reference's second setting in configs/base_config.py); spatial branch: blocks 10..21 of 24.
_base_ = ['./corrclip_vit-b16-dino-b8.py']
# the CLIP, named once (a child config that only sets these variables changes
# nothing: mmengine substitutes them where this file uses them)
clip_model = 'ViT-L-14-quickgelu'
clip_pretrained = 'metaclip_fullcc'
model = dict(
    backbone=dict(model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=768))
