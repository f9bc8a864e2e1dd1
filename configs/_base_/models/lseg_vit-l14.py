# LSeg on OpenAI CLIP ViT-L/14: the ViT-B/16 model with the larger CLIP. Only
# the CLIP name, the four DPT layers (LSeg's ViT-L hooks 5, 11, 17, 23) and the
# channel numbers that follow (width 1024, joint dimension 768, LSeg's ViT-L
# reassemble channels 256/512/1024/1024, patch 14) change. The training config
# configs/lseg/lseg_vit-l14_80k_coco-stuff171-480x480.py applies the same change
# to the ViT-B/16 training config.
_base_ = ['./lseg_vit-b16.py']
clip_model = 'ViT-L-14'
model = dict(
    backbone=dict(model_name=clip_model, out_indices=(5, 11, 17, 23)),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(in_channels=1024, embed_dim=768,
                     post_process_channels=(256, 512, 1024, 1024), patch_size=14))
