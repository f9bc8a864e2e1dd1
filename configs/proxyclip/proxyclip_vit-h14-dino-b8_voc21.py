# ProxyCLIP on OpenCLIP ViT-H/14 (LAION-2B), voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/proxyclip_vit-h14-dino-b8.py',
          '../_base_/protocols/proxyclip/voc21.py']
model = {{_base_.protocol_model}}
