# CorrCLIP on MetaCLIP ViT-L/14 (open_clip `ViT-L-14-quickgelu` / `metaclip_fullcc`, the
# reference's second setting in configs/base_config.py); spatial branch: blocks 10..21 of 24.
_base_ = ['./corrclip_vit-b16-dino-b8.py']
model = dict(
    backbone=dict(model_name='ViT-L-14-quickgelu', pretrained='metaclip_fullcc'),
    text_encoder=dict(model_name='ViT-L-14-quickgelu', pretrained='metaclip_fullcc'),
    decode_head=dict(in_channels=768))
