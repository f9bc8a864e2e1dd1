# Protocol 'san' (SAN as released by its authors) on coco_stuff171:
# github.com/MendelXu/SAN @ e19262d1, configs/Base-coco-stuff-164K-171.yaml (DATASETS.TEST
# 'coco_2017_test_stuff_sem_seg'):
# - test resize: INPUT.MIN_SIZE_TEST 640 / MAX_SIZE_TEST 2560 (detectron2 ResizeShortestEdge
#   in the default test DatasetMapper), PIL decoding (read_image) and bilinear PIL resizing;
# - class names: the dataset's registered stuff_classes
#   (san/data/datasets/register_coco_stuff_164k.py),
#   configs/_base_/vocabularies/san/coco_stuff171.txt,
#   each encoded as ONE prompt even with commas
#   ("road, route"; PredefinedOvClassifier.forward): text_encoder.whole_names=True.
# The final resize order (SEM_SEG_POSTPROCESS_BEFORE_INFERENCE) is a model setting of the
# official configs (decode_head.mask_upsample='original'), the same on every benchmark.
_base_ = [
    '../../datasets/coco_stuff171.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/san/coco_stuff171.txt',
    text_encoder=dict(whole_names=True))
