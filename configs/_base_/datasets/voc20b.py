# PAS-20b: PASCAL VOC 2012 val with background, 21 classes, as CAT-Seg evaluates it
# (eval.sh "Pascal VOC-b": datasets/voc20b.json on voc_2012_test_background_sem_seg).
# VOC-21's images, labels (0 = background) and metric (mIoU over the 21 labels, background
# included); the background is named by 39 names (PASCAL Context classes that are not VOC
# classes), and a prediction on any of them is background (configs/catseg/README.md).
# Vocabulary: mmovss/vocab/names/voc20b.txt (21 classes; class 0 has the 39 names).
# layout='mmseg' or 'detectron2' picks the on-disk tree under data_root
# (docs/dataset_prepare.md). Override data_root / layout with e.g.
#   --cfg-options test_dataloader.dataset.data_root=/data/x \
#                 test_dataloader.dataset.layout=detectron2
dataset_type = 'PascalVOC20bDataset'
data_root = 'data/VOCdevkit/VOC2012'
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
