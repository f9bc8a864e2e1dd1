# SAN ViT-B/16 as released by its authors: github.com/MendelXu/SAN,
# configs/san_clip_vit_res4_coco.yaml, weights
# https://huggingface.co/Mendel192/san/resolve/main/san_vit_b_16.pth (official
# key layout; recognised and converted by mmovss.converters.san_official).
# The architecture is ../_base_/models/san_vit-b16.py (FUSION_MAP
# 0->0, 3->1, 6->2, 9->3 = out_origin + out_indices (2, 5, 8);
# FEATURE_LAST_LAYER_IDX 9 = start_block 9; [SLS] tokens start as the class
# token; biases max-pooled; vild templates; softmax with a learned void class,
# void dropped, sigmoid masks). What differs from our default, as released:
# * CLIP input: the rows/columns of the 0.5x image that do not fill a 16-px
#   patch are dropped (official conv1), not padded (no effect on this model's
#   32-divisible inputs; see the ViT-L/14 config);
# * side adapter: its 40 x 40 position embedding is resized only when the
#   number of patches differs from 1600 (a 20 x 80 grid reads it in raster
#   order), as RegionwiseSideAdapterNetwork.forward_features;
# * test images: decoded and resized (short side 640, long side <= 2560) with
#   PIL, as detectron2's ResizeShortestEdge on uint8 images;
# * final resize (SEM_SEG_POSTPROCESS_BEFORE_INFERENCE): the mask logits are
#   cropped and resized to the original image before the sigmoid and the class
#   product (MaskClassificationEncoderDecoder + mask_upsample='original');
# * class names: SAN's registered names of each benchmark
#   (_base_/vocabularies/san/), each ONE prompt even with commas
#   ("road, route"): text_encoder.whole_names=True.
# protocol = 'san': --benchmark KEY uses _base_/protocols/san/KEY.py (SAN's
# names, PIL 640 / 2560 resize) for the six benchmarks SAN evaluates.
#   python tools/test.py configs/san/san-official_vit-b16_60k_coco-stuff171-640x640.py \
#       san_vit_b_16.pth --benchmark ade20k_150
_base_ = ['./san_vit-b16_60k_coco-stuff171-640x640.py',
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
