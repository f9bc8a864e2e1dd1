# NACLIP + PAMR on pascal_context_60; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/naclip-pamr_vit-b16.py',
          '../_base_/protocols/naclip/pascal_context_60.py']
model = {{_base_.protocol_model}}
