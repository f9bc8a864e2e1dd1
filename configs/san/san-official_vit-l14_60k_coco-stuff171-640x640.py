# SAN ViT-L/14 (336 px CLIP) as released by its authors: github.com/MendelXu/SAN,
# configs/san_clip_vit_large_res4_coco.yaml, weights
# https://huggingface.co/Mendel192/san/resolve/main/san_vit_large_14.pth
# (official key layout; mmovss.converters.san_official). FUSION_MAP
# 0->0, 6->1, 12->2, 18->3 = out_origin + out_indices (5, 11, 17),
# FEATURE_LAST_LAYER_IDX 18 = start_block 18, CLIP_RESOLUTION 0.7.
# As released (see the ViT-B/16 config): CLIP drops the rows/columns of the
# 0.7x image that do not fill a 14-px patch (e.g. a 640 x 864 input gives
# 448 x 604 -> 32 x 43 patches, not 32 x 44), the side adapter's position
# embedding is resized only when the number of patches differs, test
# images are decoded and resized with PIL, the mask logits are resized to the
# original image before the sigmoid, and each class name is one prompt even
# with commas (SAN's names; protocol 'san' for --benchmark).
_base_ = ['./san_vit-l14_60k_coco-stuff171-640x640.py',
          '../_base_/protocols/detectron2_pipelines.py']
model = dict(
    type='MaskClassificationEncoderDecoder',
    vocabulary='{{fileDirname}}/../_base_/vocabularies/san/coco_stuff171.txt',
    backbone=dict(patch_remainder='crop'),
    text_encoder=dict(whole_names=True),
    decode_head=dict(side_adapter=dict(pos_embed_resize='tokens'), mask_upsample='original'))
custom_hooks = []  # the vocabulary is the official one, not the dataset's
protocol = 'san'  # --benchmark KEY: configs/_base_/protocols/san/KEY.py
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
