# CAT-Seg ViT-L/14@336 trained on COCO-Stuff-171: the ViT-B/16 recipe with the
# larger CLIP (see ../_base_/models/catseg_vit-l14.py; the same change).
#   python tools/train.py configs/catseg/catseg_vit-l14_80k_coco-stuff171-384x384.py
_base_ = ['./catseg_vit-b16_80k_coco-stuff171-384x384.py']
clip_model = 'ViT-L-14-336'
model = dict(
    backbone=dict(model_name=clip_model, input_size=(336, 336), out_indices=(7, 15)),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(in_channels=(1024, 1024, 768)))
