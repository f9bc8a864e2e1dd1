# NACLIP on OpenCLIP ViT-H/14 (LAION-2B), voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/naclip_vit-h14.py',
          '../_base_/protocols/naclip/voc21.py']
model = {{_base_.protocol_model}}
