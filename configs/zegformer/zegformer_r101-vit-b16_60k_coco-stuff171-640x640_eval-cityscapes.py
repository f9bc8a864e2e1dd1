# Evaluate ZegFormer R-101 + ViT-B/16 (zegformer_r101-vit-b16_60k_coco-stuff171-640x640.py) on cityscapes; the vocabulary follows the dataset.
_base_ = [
    '../_base_/models/zegformer_r101_vit-b16.py', '../_base_/datasets/cityscapes.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
