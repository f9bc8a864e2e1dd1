# LSeg ViT-B/16 trained on COCO-Stuff-171 (lseg_vit-b16_80k_coco-stuff171-480x480.py),
# evaluated on PASCAL VOC-21; the vocabulary follows the dataset.
#   python tools/test.py configs/lseg/lseg_vit-b16_80k_coco-stuff171-480x480_voc21.py work_dirs/lseg_vit-b16_80k_coco-stuff171-480x480/iter_80000.pth
_base_ = [
    '../_base_/models/lseg_vit-b16.py',
    '../_base_/datasets/voc21.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/inference_only.py',
]
train_dataloader = None
