# ClearCLIP on voc20; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/clearclip_vit-b16.py',
          '../_base_/protocols/clearclip/voc20.py']
model = {{_base_.protocol_model}}
