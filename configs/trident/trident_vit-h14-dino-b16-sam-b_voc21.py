# Trident on OpenCLIP ViT-H/14 (LAION-2B), voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/trident_vit-h14-dino-b16-sam-b.py',
          '../_base_/protocols/trident/voc21.py']
model = {{_base_.protocol_model}}
