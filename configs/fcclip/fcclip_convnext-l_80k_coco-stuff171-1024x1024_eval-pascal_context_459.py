# Evaluate FC-CLIP ConvNeXt-L (fcclip_convnext-l_80k_coco-stuff171-1024x1024.py)
# on pascal_context_459; the vocabulary follows the dataset.
_base_ = [
    '../_base_/models/fcclip_convnext-l.py', '../_base_/datasets/pascal_context_459.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
