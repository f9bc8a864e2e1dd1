# LSeg ViT-L/14 trained on COCO-Stuff-171: the ViT-B/16 recipe with the larger
# CLIP (see ../_base_/models/lseg_vit-l14.py; the same change).
#   python tools/train.py configs/lseg/lseg_vit-l14_80k_coco-stuff171-480x480.py
_base_ = ['./lseg_vit-b16_80k_coco-stuff171-480x480.py']
clip_model = 'ViT-L-14'
model = dict(
    backbone=dict(model_name=clip_model, out_indices=(5, 11, 17, 23)),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(in_channels=1024, embed_dim=768,
                     post_process_channels=(256, 512, 1024, 1024), patch_size=14))
