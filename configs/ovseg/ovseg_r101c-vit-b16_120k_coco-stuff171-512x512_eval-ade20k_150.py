# Evaluate OVSeg R-101c + mask-adapted ViT-B/16 (ovseg_r101c-vit-b16_120k_coco-stuff171-512x512.py) on ade20k_150; the vocabulary follows the dataset.
_base_ = [
    '../_base_/models/ovseg_r101c_vit-b16.py', '../_base_/datasets/ade20k_150.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
