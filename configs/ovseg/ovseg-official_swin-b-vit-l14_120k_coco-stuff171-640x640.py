# OVSeg Swin-B + mask-adapted CLIP ViT-L/14 as released by its authors
# (github.com/facebookresearch/ov-seg, commit 36f49d49): checkpoint
# ovseg_swinbase_vitL14_ft_mpt.pth (GETTING_STARTED.md, Google Drive, md5 526080...),
# configs/ovseg_swinB_vitL_bs32_120k.yaml. It holds the whole model, the fine-tuned +
# mask-prompt-tuned CLIP included. Convert it first:
#   python tools/model_converters/ovseg_official_to_mmovss.py \
#       ovseg_swinbase_vitL14_ft_mpt.pth ovseg_swinb_vitl14.pth
#   python tools/test.py THIS_CONFIG ovseg_swinb_vitl14.pth --benchmark pascal_context_59
# --benchmark sets the released per-benchmark CLIP_ENSEMBLE_WEIGHT (protocol 'ovseg':
# 0.6 PASCAL Context, 0.45 VOC-20, else 0.7), as the README's evaluation commands, and on the
# five benchmarks the released code evaluates its class names and PIL test resize.
# As the R-101c config (ovseg-official_r101c-vit-b16_120k_coco-stuff171-512x512.py) except:
# Swin-B backbone (embed 128, depths 2-2-18-2, heads 4-8-16-32, window 12, 384 pretraining,
# official key layout converted to mmseg's SwinTransformer), CLIP ViT-L/14 (joint dim 768),
# MASK_THR 0.4, test resize shortest edge 640 (longest <= 2560; PIL).
_base_ = ['./ovseg-official_r101c-vit-b16_120k_coco-stuff171-512x512.py']
protocol = 'ovseg'
clip_model = 'ViT-L-14'
model = dict(
    backbone=dict(
        _delete_=True, type='SwinTransformer', pretrain_img_size=384, embed_dims=128,
        patch_size=4, window_size=12, mlp_ratio=4, depths=(2, 2, 18, 2),
        num_heads=(4, 8, 16, 32), strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3),
        qkv_bias=True, qk_scale=None, patch_norm=True, drop_rate=0.0, attn_drop_rate=0.0,
        drop_path_rate=0.3, use_abs_pos_embed=False),
    text_encoder=dict(model_name=clip_model),
    decode_head=dict(
        in_channels=[128, 256, 512, 1024], embed_dim=768,
        region_classifier=dict(clip=dict(model_name=clip_model), mask_threshold=0.4)))
# PIL, as detectron2's ResizeShortestEdge (INPUT.MIN/MAX_SIZE_TEST 640 / 2560,
# configs/ovseg_swinB_vitL_bs32_120k.yaml L79, L81)
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
