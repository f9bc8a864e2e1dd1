# Protocol 'ovseg-r101c' (OVSeg R-101c, released model) on voc20: protocol 'ovseg'
# (the released per-benchmark CLIP_ENSEMBLE_WEIGHT and class names) with this model's test
# resize: PIL, shortest edge 512, longest <= 2048, detectron2's ResizeShortestEdge with
# INPUT.MIN_SIZE_TEST 512 / MAX_SIZE_TEST 2048 of configs/ovseg_R101c_vitB_bs32_120k.yaml L75-76
# (ov-seg @ 36f49d49; the same DatasetMapper(cfg, False) path as protocol 'ovseg', whose base
# also brings detectron2_pipelines).
_base_ = ['../ovseg/voc20.py']
test_pipeline = {{_base_.detectron2_pipelines.short_512_long_2048}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
