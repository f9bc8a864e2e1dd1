# CorrCLIP on OpenCLIP ViT-H/14 (LAION-2B), voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/corrclip_vit-h14-dino-b8.py',
          '../_base_/protocols/corrclip/voc21.py']
model = {{_base_.protocol_model}}
