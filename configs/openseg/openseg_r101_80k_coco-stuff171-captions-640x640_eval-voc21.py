# Evaluate OpenSeg R-101 (openseg_r101_80k_coco-stuff171-captions-640x640.py) on voc21; the vocabulary follows the dataset.
_base_ = [
    '../_base_/models/openseg_r101.py', '../_base_/datasets/voc21.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
