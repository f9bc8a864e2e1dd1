# CorrCLIP on OpenCLIP ViT-H/14 (`ViT-H-14` / `laion2b_s32b_b79k`, the reference's third
# setting in configs/base_config.py); spatial branch: blocks 2..29 of 32.
_base_ = ['./corrclip_vit-b16-dino-b8.py']
model = dict(
    backbone=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'),
    text_encoder=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'),
    decode_head=dict(in_channels=1024))
