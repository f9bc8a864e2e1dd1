# ZegFormer R-50 + CLIP ViT-B/16 as released by its authors
# (github.com/dingjiansw101/ZegFormer, commit 8cb9e8fb), trained on the 15 seen PASCAL VOC
# classes: checkpoint zegformer_R50_bs32_10k_vit16_voc.pth (the name of its training config;
# the README's Google Drive folder), evaluated as
# configs/pascal_voc/zegformer_R50_bs32_10k_vit16_voc_gzss_eval.yaml: there ENSEMBLING is False
# with CLIP_CLASSIFICATION True, so the masks are classified by CLIP alone (mode='img', the
# segment branch's "no object" logit appended), and GZERO_CALIBRATE keeps its default (-1: no
# calibration).
_base_ = ['./zegformer-official_r101-vit-b16_10k_voc15-512x512.py']
model = dict(backbone=dict(depth=50), decode_head=dict(mode='img', calibration=0.0))
