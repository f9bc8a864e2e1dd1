# Protocol 'fcclip' (FC-CLIP, released models) on ade20k_150:
# github.com/bytedance/fc-clip @ 2b0bbe21,
# configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_ade20k.yaml
# (DATASETS.TEST openvocab_ade20k_panoptic_val):
# - test resize: detectron2 ResizeShortestEdge with the defaults MIN_SIZE_TEST 800 /
#   MAX_SIZE_TEST 1333 (the yaml sets none), PIL decoding and bilinear resizing;
# - PANOPTIC_ON True (inherited): SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE, the mask logits
#   are resized to the original image before the sigmoid: mask_upsample='original';
# - class names: fcclip/data/datasets/ade20k_150_with_prompt_eng.txt,
#   equal to the benchmark's (mmovss/vocab/names/ are these files): vocabulary=None.
_base_ = [
    '../../datasets/ade20k_150.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_800_long_1333}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(vocabulary=None, decode_head=dict(mask_upsample='original'))
