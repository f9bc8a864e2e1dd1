# CAT-Seg on OpenAI CLIP ViT-L/14@336 (configs/vitl_336.yaml of
# github.com/KU-CVLAB/CAT-Seg): the ViT-B/16 model with the larger CLIP. Only
# the CLIP name, its input size (336: the same 24x24 grid), the guidance
# blocks (7, 15) and the channel numbers that follow (width 1024, joint
# dimension 768) change. The training config
# configs/catseg/catseg_vit-l14_80k_coco-stuff171-384x384.py applies the same
# change to the ViT-B/16 training config.
_base_ = ['./catseg_vit-b16.py']
clip_model = 'ViT-L-14-336'
model = dict(
    backbone=dict(model_name=clip_model, input_size=(336, 336), out_indices=(7, 15)),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(in_channels=(1024, 1024, 768)))
