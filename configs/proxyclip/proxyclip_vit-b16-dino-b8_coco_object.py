# ProxyCLIP on coco_object; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/proxyclip_vit-b16-dino-b8.py',
          '../_base_/protocols/proxyclip/coco_object.py']
model = {{_base_.protocol_model}}
