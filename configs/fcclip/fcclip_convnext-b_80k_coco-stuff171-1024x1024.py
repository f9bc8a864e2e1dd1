# FC-CLIP ConvNeXt-B: the ConvNeXt-L recipe with the base CLIP (the model
# changes are those of ../_base_/models/fcclip_convnext-b.py).
_base_ = ['./fcclip_convnext-l_80k_coco-stuff171-1024x1024.py']
clip_model = 'convnext_base_w_320'
clip_pretrained = 'laion_aesthetic_s13b_b82k_augreg'
model = dict(
    backbone=dict(model_name=clip_model, pretrained=clip_pretrained),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(in_channels=[128, 256, 512, 1024], embed_dim=640))
