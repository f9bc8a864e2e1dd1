# Trident (Shi et al., ICCV 2025) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/trident_vit-b16-dino-b16-sam-b.py on the tiny CLIP: proxy
# attention (beta 1.2, gamma 3.0) in each sub-image, spliced, then aggregated over
# the whole image with the thresholded last-block attention of SAM's image encoder
# (cos_fac 1.2, refine_neg_cos True, the code's base_config.py); logit scale 40.
# Two stand-ins, so this row measures the pipeline, not Trident:
# * SAM's image encoder is RANDOMLY initialised (no SAM weights offline) and tiny:
#   SAM's ViT design (patch 16, windowed block + global last block, relative
#   positions), 2 blocks of width 32, input 128 px (SAM upsamples to 1024 px; the
#   64 px images -> an 8 x 8 SAM grid, the CLIP grid). Its weights come from the
#   run's seed (`randomness` below). Its attention is meaningless: the row measures
#   nothing about SAM;
# * the proxy is the tiny CLIP's own image tower (`tiny_clip_vfm` of the base), not
#   DINO-B/16: no DINO exists offline.
# Sub-images: the 336/224 windows become one 64-px window (the whole image), so the
# splicing is the identity. Common settings (the tiny CLIP's prompts, no
# background): ../_base_/models/training-free_tiny-clip.py.
#   python tools/test.py configs/ovshapes/trident_tiny-clip-random-tiny-sam_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
randomness = dict(seed=0)
model = dict(
    type='TridentSegmentor',
    backbone=dict(
        type='TridentCLIPViT',
        vfm={{_base_.tiny_clip_vfm}},
        beta=1.2,
        gamma=3.0,
        sam=dict(model_type='vit_b', checkpoint=None,
                 encoder_cfg=dict(img_size=128, patch_size=16, embed_dim=32, depth=2,
                                  num_heads=2, global_attn_indexes=(1, ),
                                  window_size=4, out_chans=32)),
        slide_crop=64,
        slide_stride=64,
        cos_fac=1.2,
        refine_neg_cos=True,
        sam_splits=1),
    decode_head=dict(logit_scale=40.0))
