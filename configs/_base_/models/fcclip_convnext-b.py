# FC-CLIP on open_clip ConvNeXt-Base (`convnext_base_w_320` /
# `laion_aesthetic_s13b_b82k_augreg`), 640-d joint space.
_base_ = ['./fcclip_convnext-l.py']
clip_model = 'convnext_base_w_320'
clip_pretrained = 'laion_aesthetic_s13b_b82k_augreg'
model = dict(
    backbone=dict(model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=[128, 256, 512, 1024], embed_dim=640))
