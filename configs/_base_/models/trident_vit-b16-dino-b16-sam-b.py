# Trident (Shi et al., ICCV 2025; github.com/YuHengsss/Trident @ a93b346d): OpenAI CLIP
# ViT-B/16 + DINO ViT-B/16 (timm `vit_base_patch16_224.dino`) on 336-pixel sub-images, spliced
# and aggregated over the whole image with the last-block attention of SAM ViT-B's image
# encoder (TridentCLIPViT, inside a TridentSegmentor). Defaults of the code's
# configs/base_config.py: beta 1.2, gamma 3.0, cos_fac 1.2, refine_neg_cos True, slide 336 /
# 224, logit scale 40, no SAM prompt refinement, no PAMR. SAM's weights are not downloaded:
#   --cfg-options model.backbone.sam.checkpoint=/path/to/sam_vit_b_01ec64.pth
# Offline, the DINO weights as a file too:
#   --cfg-options model.backbone.vfm.pretrained=/path/to/dino_vitbase16_pretrain.pth
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/trident/<benchmark>.py (tools/test.py --benchmark)
protocol = 'trident'
model = dict(
    type='TridentSegmentor',
    backbone=dict(
        _delete_=True,
        type='TridentCLIPViT',
        model_name='ViT-B-16',
        pretrained='openai',
        vfm=dict(model_name='vit_base_patch16_224.dino', pretrained=True),
        # the code maps CLIP's input to DINO's with UnNormalize(CLIP mean/std in [0, 1])
        input_mean=[122.7709383, 116.7460125, 104.09373615],
        input_std=[68.5005327, 66.6321579, 70.32316305],
        beta=1.2,
        gamma=3.0,
        sam=dict(model_type='vit_b', checkpoint=None),
        slide_crop=336,
        slide_stride=224,
        cos_fac=1.2,
        refine_neg_cos=True,
        sam_splits=1,
        pos_embed_resize='scale_factor',
        incomplete_patches='drop'),
    decode_head=dict(logit_scale=40.0),
    test_cfg=dict(mode='whole'))
