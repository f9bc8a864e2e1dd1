# (a) Zero-shot dense CLIP (no training): the tiny CLIP's own last block, its
# patch tokens projected to the joint space and scored against the 40 class
# names. Run: python tools/test.py configs/ovshapes/dense-clip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/ovshapes_tiny_clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
