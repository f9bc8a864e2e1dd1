# ProxyCLIP (Lan et al., ECCV 2024): CLIP's last-block values attended with
# the patch-feature similarities of DINO ViT-B/8 (timm
# `vit_base_patch8_224.dino`), beta 1.2, gamma 3.0. Defaults of
# github.com/mc-lan/ProxyCLIP (proxyclip_segmentor.py): logit scale 40,
# slide crop 336 / stride 112.
# Offline, give the DINO weights as a file:
#   --cfg-options model.backbone.vfm.pretrained=/path/to/dino_vitbase8.pth
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/proxyclip/<benchmark>.py (tools/test.py --benchmark)
protocol = 'proxyclip'
model = dict(
    backbone=dict(
        _delete_=True,
        type='ProxyCLIPViT',
        model_name='ViT-B-16',
        pretrained='openai',
        vfm=dict(model_name='vit_base_patch8_224.dino', pretrained=True),
        beta=1.2,
        gamma=3.0,
        pos_embed_resize='scale_factor',
        incomplete_patches='drop'),
    test_cfg=dict(crop_size=(336, 336), stride=(112, 112)))
