# LSeg ViT-L/14 trained on COCO-Stuff-171 (lseg_vit-l14_80k_coco-stuff171-480x480.py),
# evaluated on PASCAL Context-60; the vocabulary follows the dataset.
#   python tools/test.py configs/lseg/lseg_vit-l14_80k_coco-stuff171-480x480_pascal_context_60.py work_dirs/lseg_vit-l14_80k_coco-stuff171-480x480/iter_80000.pth
_base_ = [
    '../_base_/models/lseg_vit-l14.py',
    '../_base_/datasets/pascal_context_60.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/inference_only.py',
]
train_dataloader = None
