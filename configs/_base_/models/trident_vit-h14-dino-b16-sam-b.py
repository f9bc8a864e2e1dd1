# Trident on OpenCLIP ViT-H/14 (`ViT-H-14` / `laion2b_s32b_b79k`, the code's second tower in
# configs/base_config.py); windows and the original image are resized to multiples of 14.
_base_ = ['./trident_vit-b16-dino-b16-sam-b.py']
model = dict(
    backbone=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'),
    text_encoder=dict(model_name='ViT-H-14', pretrained='laion2b_s32b_b79k'),
    decode_head=dict(in_channels=1024))
