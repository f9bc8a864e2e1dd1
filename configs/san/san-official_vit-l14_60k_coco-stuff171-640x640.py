# SAN ViT-L/14 (336 px CLIP) as released by its authors: github.com/MendelXu/SAN,
# configs/san_clip_vit_large_res4_coco.yaml, weights
# https://huggingface.co/Mendel192/san/resolve/main/san_vit_large_14.pth
# (official key layout; mmovss.converters.san_official). FUSION_MAP
# 0->0, 6->1, 12->2, 18->3 = out_origin + out_indices (5, 11, 17),
# FEATURE_LAST_LAYER_IDX 18 = start_block 18, CLIP_RESOLUTION 0.7.
# As released (see the ViT-B/16 config): CLIP drops the rows/columns of the
# 0.7x image that do not fill a 14-px patch (e.g. a 640 x 864 input gives
# 448 x 604 -> 32 x 43 patches, not 32 x 44), the side adapter's position
# embedding is resized only when the number of patches differs, and test
# images are decoded and resized with PIL.
_base_ = ['./san_vit-l14_60k_coco-stuff171-640x640.py']
model = dict(
    backbone=dict(patch_remainder='crop'),
    decode_head=dict(side_adapter=dict(pos_embed_resize='tokens')))
test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True, backend='pillow'),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
