# Protocol 'ovseg-r101c' (OVSeg R-101c, released model) on voc20b (PAS-20b): protocol 'ovseg'
# (the released per-benchmark CLIP_ENSEMBLE_WEIGHT) with this model's test resize,
# shortest edge 512, longest <= 2048 (configs/ovseg_R101c_vitB_bs32_120k.yaml).
# Not a benchmark of the released evaluation: mmovss's choice, this size with mmseg's
# (OpenCV) resize; the five it evaluates resize with PIL (detectron2_pipelines.py).
_base_ = ['../ovseg/voc20b.py']
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
