# COCO-Object: background + 80 COCO things (81 classes).
# Vocabulary: mmovss/vocab/names/coco_object.txt (81 classes).
# layout='mmseg' or 'detectron2' picks the on-disk tree under data_root
# (docs/dataset_prepare.md). Override data_root / layout with e.g.
#   --cfg-options test_dataloader.dataset.data_root=/data/x \
#                 test_dataloader.dataset.layout=detectron2
dataset_type = 'COCOObjectDataset'
data_root = 'data/coco_stuff164k'
layout = 'mmseg'

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    # labels are loaded after Resize: the metric compares at full resolution
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        layout=layout,
        split='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
