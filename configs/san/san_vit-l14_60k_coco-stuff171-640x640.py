# SAN ViT-L/14 (336 px CLIP) on COCO-Stuff-171: 8 GPUs x 4 images. The model
# changes are those of ../_base_/models/san_vit-l14.py.
_base_ = ['./san_vit-b16_60k_coco-stuff171-640x640.py']
clip_model = 'ViT-L-14-336'
model = dict(
    backbone=dict(model_name=clip_model, out_indices=(5, 11, 17),
                  encoder_resolution=0.7),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(clip=dict(model_name=clip_model), start_block=18))
train_dataloader = dict(batch_size=4)
