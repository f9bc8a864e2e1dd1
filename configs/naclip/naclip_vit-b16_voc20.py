# NACLIP on voc20; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/naclip_vit-b16.py',
          '../_base_/protocols/naclip/voc20.py']
model = {{_base_.protocol_model}}
