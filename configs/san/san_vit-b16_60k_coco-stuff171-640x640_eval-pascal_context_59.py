# Evaluate a SAN ViT-B/16 trained on COCO-Stuff-171
# (san_vit-b16_60k_coco-stuff171-640x640.py) on pascal_context_59: the vocabulary follows
# the dataset, nothing is retrained.
#   python tools/test.py configs/san/san_vit-b16_60k_coco-stuff171-640x640_eval-pascal_context_59.py work_dirs/.../iter_60000.pth
_base_ = [
    '../_base_/models/san_vit-b16.py', '../_base_/datasets/pascal_context_59.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
