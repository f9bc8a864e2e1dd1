# Evaluate FC-CLIP ConvNeXt-B (fcclip_convnext-b_80k_coco-stuff171-1024x1024.py)
# on voc21; the vocabulary follows the dataset.
_base_ = [
    '../_base_/models/fcclip_convnext-b.py', '../_base_/datasets/voc21.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
