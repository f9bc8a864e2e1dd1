# CAT-Seg ViT-B/16 trained on COCO-Stuff-171 (catseg_vit-b16_80k_coco-stuff171-384x384.py),
# evaluated on COCO-Object; the vocabulary follows the dataset.
#   python tools/test.py configs/catseg/catseg_vit-b16_80k_coco-stuff171-384x384_coco_object.py work_dirs/catseg_vit-b16_80k_coco-stuff171-384x384/iter_80000.pth
_base_ = [
    '../_base_/models/catseg_vit-b16.py',
    '../_base_/datasets/coco_object.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/inference_only.py',
]
train_dataloader = None
