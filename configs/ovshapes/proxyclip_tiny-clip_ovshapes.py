# ProxyCLIP (Lan et al., ECCV 2024) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/proxyclip_vit-b16-dino-b8.py on the tiny CLIP: the last block's
# values attended with the thresholded, sharpened patch similarities of a proxy
# model (beta 1.2, gamma 3.0), no residual, no FFN; logit scale 40.
# The proxy is NOT a vision foundation model: no DINO exists offline, so it is the
# tiny CLIP's own image tower (`tiny_clip_vfm` of the base: the same weights as a
# timm ViT, features = its ln_post tokens), the "CLIP as its own proxy" variant. The
# row measures proxy attention with CLIP's own final features, not what a VFM adds.
# Proxy and CLIP share the 8 x 8 grid (DINO-B/8 with CLIP-B/16: a 2x finer proxy
# grid). Give a timm ViT of your own with
#   --cfg-options model.backbone.vfm.model_name=NAME model.backbone.vfm.pretrained=FILE \
#       model.backbone.vfm.model_kwargs=None
# Common settings (whole-image inference instead of 336/112 windows, the tiny CLIP's
# prompts, no background): ../_base_/models/training-free_tiny-clip.py.
#   python tools/test.py configs/ovshapes/proxyclip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    backbone=dict(
        type='ProxyCLIPViT',
        vfm={{_base_.tiny_clip_vfm}},
        beta=1.2,
        gamma=3.0),
    decode_head=dict(logit_scale=40.0))
