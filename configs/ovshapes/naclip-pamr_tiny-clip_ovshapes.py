# NACLIP with its post-processing (../_base_/models/naclip-pamr_vit-b16.py) on
# OVShapes: ./naclip_tiny-clip_ovshapes.py plus PAMR, 10 iterations, on the logits at
# the original image size guided by the network input. Scaled to the patch: NACLIP's
# dilations (8, 16) px are half a patch and one patch of ViT-B/16; the tiny CLIP's
# patch is 8 px, so the dilations are (4, 8) px.
#   python tools/test.py configs/ovshapes/naclip-pamr_tiny-clip_ovshapes.py
_base_ = ['./naclip_tiny-clip_ovshapes.py']
model = dict(
    decode_head=dict(
        pamr=dict(_delete_=True, type='PAMR', num_iter=10, dilations=(4, 8))))
