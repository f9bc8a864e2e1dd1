# OVShapes (mmovss/ovshapes): 40 classes, 12 of them unseen in segmentation
# training. Generate it with
#   python tools/ovshapes/make_dataset.py --out data/ovshapes --seed 0
# Training sees only the 28 seen classes (vocabulary AND pixels: the dataset's
# `classes` subset maps unseen labels to 255); evaluation uses all 40 names and
# reports mIoU over seen and unseen classes and their harmonic mean (hIoU).
# Override the root with
#   --cfg-options train_dataloader.dataset.data_root=DIR \
#                 val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
# (training-free configs have no train_dataloader: leave its option out)
dataset_type = 'OVShapesDataset'
data_root = 'data/ovshapes'

# Copies of mmovss.ovshapes.world.{seen,unseen}_class_names() (a test checks
# that they agree).
seen_classes = [
    'sky', 'grass', 'sand', 'wall', 'striped red', 'checkered red', 'dark red',
    'speckled red', 'plain green', 'checkered green', 'dotted green', 'speckled green',
    'plain blue', 'striped blue', 'dotted blue', 'dark blue', 'striped yellow',
    'checkered yellow', 'dark yellow', 'speckled yellow', 'plain purple',
    'checkered purple', 'dotted purple', 'speckled purple', 'plain orange',
    'striped orange', 'dotted orange', 'dark orange'
]
unseen_classes = [
    'plain red', 'dotted red', 'striped green', 'dark green', 'checkered blue',
    'speckled blue', 'dotted yellow', 'plain yellow', 'dark purple', 'striped purple',
    'speckled orange', 'checkered orange'
]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadSegAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# Test-time scale: the longest image side the models run at. OVShapes' own
# images (64 x 64) pass unchanged; a larger image (a photo given to
# tools/demo.py, the web UI or the inferencer) is shrunk, aspect kept, so that
# its longer side is test_max_side px, and the prediction is resized back to
# the photo's size. Without it a 4000 x 3000 photo ran the tiny CLIP (8-px
# patches, trained on 64-px scenes) on 187,500 tokens; at 512 px it runs on
# 3,072 (docs/inference.md). Change it with
#   --cfg-options test_dataloader.dataset.pipeline.1.max_side=N
test_max_side = 512
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeToMaxSide', max_side=test_max_side),
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=dict(classes=seen_classes),
        data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='OpenVocabIoUMetric', iou_metrics=['mIoU'],
                     unseen_classes=unseen_classes)
test_evaluator = val_evaluator
