# CorrCLIP on MetaCLIP ViT-L/14, voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/corrclip_vit-l14-dino-b8.py',
          '../_base_/protocols/corrclip/voc21.py']
model = {{_base_.protocol_model}}
