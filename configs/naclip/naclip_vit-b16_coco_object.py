# NACLIP on coco_object; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/naclip_vit-b16.py',
          '../_base_/protocols/naclip/coco_object.py']
model = {{_base_.protocol_model}}
