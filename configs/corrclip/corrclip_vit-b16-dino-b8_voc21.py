# CorrCLIP (SAM2 masks) on voc21; published ViT-B/16 mIoU: README.md of this folder.
_base_ = ['../_base_/models/corrclip_vit-b16-dino-b8.py',
          '../_base_/protocols/corrclip/voc21.py']
model = {{_base_.protocol_model}}
