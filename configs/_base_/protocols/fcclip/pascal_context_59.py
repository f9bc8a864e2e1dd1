# Protocol 'fcclip' (FC-CLIP, released models) on pascal_context_59:
# github.com/bytedance/fc-clip @ 2b0bbe21,
# configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_pc59.yaml
# (DATASETS.TEST openvocab_pascal_ctx59_sem_seg_val):
# - test resize: detectron2 ResizeShortestEdge with the defaults MIN_SIZE_TEST 800 /
#   MAX_SIZE_TEST 1333 (the yaml sets none), PIL decoding and bilinear resizing;
# - PANOPTIC_ON False: mask logits upsampled to the padded input before the sigmoid,
#   the sigmoid scores resized to the original image: mask_upsample='logits';
# - class names: fcclip/data/datasets/pascal_ctx_59_with_prompt_eng.txt,
#   equal to the benchmark's (mmovss/vocab/names/ are these files): vocabulary=None.
_base_ = [
    '../../datasets/pascal_context_59.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_800_long_1333}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(vocabulary=None, decode_head=dict(mask_upsample='logits'))
