# CAT-Seg ViT-L/14@336 as released by its authors: github.com/KU-CVLAB/CAT-Seg
# (commit 6d3a188a), configs/vitl_336.yaml evaluated by eval.sh, weights
# https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main/model_large.pth
# The released ViT-B/16 model (./catseg-official_vit-b16_80k_coco-stuff171-384x384.py: the
# same differences to our default) with the larger CLIP, as ../_base_/models/catseg_vit-l14.py:
# CLIP input 336 (the 384 windows are resized to 336, as the released code does), guidance
# blocks 7 and 15, widths 1024 / 768.
#   python tools/test.py configs/catseg/catseg-official_vit-l14_80k_coco-stuff171-384x384.py \
#       model_large.pth --benchmark ade20k_847
_base_ = ['./catseg-official_vit-b16_80k_coco-stuff171-384x384.py']
clip_model = 'ViT-L-14-336'
model = dict(
    backbone=dict(model_name=clip_model, input_size=(336, 336), out_indices=(7, 15)),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(in_channels=(1024, 1024, 768)))
