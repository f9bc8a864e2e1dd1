# Evaluate a SAN ViT-L/14 trained on COCO-Stuff-171
# (san_vit-l14_60k_coco-stuff171-640x640.py) on pascal_context_60: the vocabulary follows
# the dataset, nothing is retrained.
#   python tools/test.py configs/san/san_vit-l14_60k_coco-stuff171-640x640_eval-pascal_context_60.py work_dirs/.../iter_60000.pth
_base_ = [
    '../_base_/models/san_vit-l14.py', '../_base_/datasets/pascal_context_60.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
