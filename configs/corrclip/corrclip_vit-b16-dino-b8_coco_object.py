# CorrCLIP (SAM2 masks) on coco_object; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/corrclip_vit-b16-dino-b8.py',
          '../_base_/protocols/corrclip/coco_object.py']
model = {{_base_.protocol_model}}
