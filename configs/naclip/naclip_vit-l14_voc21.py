# NACLIP on OpenAI CLIP ViT-L/14, voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/naclip_vit-l14.py',
          '../_base_/protocols/naclip/voc21.py']
model = {{_base_.protocol_model}}
