# SCLIP on cityscapes; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/sclip_vit-b16.py',
          '../_base_/protocols/sclip/cityscapes.py']
model = {{_base_.protocol_model}}
