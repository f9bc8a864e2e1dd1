# ZegFormer R-50 + CLIP ViT-B/16 as released by its authors
# (github.com/dingjiansw101/ZegFormer, commit 8cb9e8fb): checkpoint
# zegformer_R50_bs32_60k_vit16_coco-stuff.pth (the name of its training config,
# configs/coco-stuff/zegformer_R50_bs32_60k_vit16_coco-stuff.yaml; the README's Google Drive
# folder), evaluated as configs/coco-stuff/zegformer_R50_bs32_60k_vit16_coco-stuff_gzss_eval.yaml:
# as the R-101 config but ResNet-50 and the segment branch's templates
# PROMPT_ENSEMBLE_TYPE 'imagenet_select' (IMAGENET_TEMPLATES_SELECT, 8 templates);
# GZERO_CALIBRATE 0.1, ensembling (fusion) on.
_base_ = ['./zegformer-official_r101-vit-b16_60k_coco-stuff156-640x640.py']
model = dict(
    backbone=dict(depth=50),
    text_encoder=dict(templates={{_base_.templates_imagenet_select}}))
