# CAT-Seg ViT-L/14@336 trained on COCO-Stuff-171 (catseg_vit-l14_80k_coco-stuff171-384x384.py),
# evaluated on PASCAL Context-459; the vocabulary follows the dataset.
#   python tools/test.py configs/catseg/catseg_vit-l14_80k_coco-stuff171-384x384_pascal_context_459.py work_dirs/catseg_vit-l14_80k_coco-stuff171-384x384/iter_80000.pth
_base_ = [
    '../_base_/models/catseg_vit-l14.py',
    '../_base_/datasets/pascal_context_459.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/inference_only.py',
]
train_dataloader = None
