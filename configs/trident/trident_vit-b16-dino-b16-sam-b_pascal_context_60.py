# Trident (CLIP + DINO + SAM) on pascal_context_60; published mIoU: README.md of this folder.
_base_ = ['../_base_/models/trident_vit-b16-dino-b16-sam-b.py',
          '../_base_/protocols/trident/pascal_context_60.py']
model = {{_base_.protocol_model}}
