# SAN on OpenAI's CLIP ViT-L/14 at 336 px (open_clip `ViT-L-14-336` /
# `openai`): 18 shallow blocks at 0.7 x the image, 6 deep blocks, as in the
# paper and mmseg's san-vit-l14 config. Only what differs from ViT-B/16.
_base_ = ['./san_vit-b16.py']
clip_model = 'ViT-L-14-336'
model = dict(
    backbone=dict(model_name=clip_model, out_indices=(5, 11, 17),
                  encoder_resolution=0.7),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(clip=dict(model_name=clip_model), start_block=18))
