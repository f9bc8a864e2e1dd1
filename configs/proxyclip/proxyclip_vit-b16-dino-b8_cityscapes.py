# ProxyCLIP on cityscapes; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/proxyclip_vit-b16-dino-b8.py',
          '../_base_/protocols/proxyclip/cityscapes.py']
model = {{_base_.protocol_model}}
