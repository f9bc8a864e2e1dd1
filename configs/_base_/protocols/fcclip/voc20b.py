# Protocol 'fcclip' (FC-CLIP, released models) on voc20b (PAS-20b, VOC-21 with
# CAT-Seg's background names):
# FC-CLIP's official code does not evaluate it (no eval yaml); mmovss's choice: FC-CLIP's
# default test resize (ResizeShortestEdge 800 / 1333, PIL), the semantic-only setting
# (PANOPTIC_ON False: mask_upsample='logits') and the benchmark's own class names
# (its background names are CAT-Seg's).
_base_ = [
    '../../datasets/voc20b.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_800_long_1333}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(vocabulary=None, decode_head=dict(mask_upsample='logits'))
