# SAM ViT-H + CLIP ViT-B/16 (training-free) on pascal_context_459. SAM weights are not
# downloaded: --cfg-options model.decode_head.mask_generator.checkpoint=sam_vit_h_4b8939.pth
_base_ = [
    '../_base_/models/sam_clip_vit-h_vit-b16.py', '../_base_/datasets/pascal_context_459.py',
    '../_base_/default_runtime.py', '../_base_/schedules/inference_only.py'
]
train_dataloader = None
