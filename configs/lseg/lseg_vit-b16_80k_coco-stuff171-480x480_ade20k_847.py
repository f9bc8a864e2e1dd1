# LSeg ViT-B/16 trained on COCO-Stuff-171 (lseg_vit-b16_80k_coco-stuff171-480x480.py),
# evaluated on ADE20K-847; the vocabulary follows the dataset.
#   python tools/test.py configs/lseg/lseg_vit-b16_80k_coco-stuff171-480x480_ade20k_847.py work_dirs/lseg_vit-b16_80k_coco-stuff171-480x480/iter_80000.pth
_base_ = [
    '../_base_/models/lseg_vit-b16.py',
    '../_base_/datasets/ade20k_847.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/inference_only.py',
]
train_dataloader = None
