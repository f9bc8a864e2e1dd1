# ClearCLIP on OpenAI CLIP ViT-L/14, voc21 (any benchmark: --benchmark KEY).
_base_ = ['../_base_/models/clearclip_vit-l14.py',
          '../_base_/protocols/clearclip/voc21.py']
model = {{_base_.protocol_model}}
