# ClearCLIP on OpenCLIP ViT-H/14 (LAION-2B), voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/clearclip_vit-h14.py',
          '../_base_/protocols/clearclip/voc21.py']
model = {{_base_.protocol_model}}
