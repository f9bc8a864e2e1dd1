# Protocol 'san' (SAN as released by its authors) on pascal_context_59:
# github.com/MendelXu/SAN @ e19262d1, configs/Base-coco-stuff-164K-171.yaml (DATASETS.TEST
# 'pcontext_sem_seg_val'):
# - test resize: INPUT.MIN_SIZE_TEST 640 / MAX_SIZE_TEST 2560 (detectron2 ResizeShortestEdge
#   in the default test DatasetMapper), PIL decoding (read_image) and bilinear PIL resizing;
# - class names: the dataset's registered stuff_classes (san/data/datasets/register_pcontext.py),
#   configs/_base_/vocabularies/san/pascal_context_59.txt,
#   each encoded as ONE prompt even with commas
#   ("road, route"; PredefinedOvClassifier.forward): text_encoder.whole_names=True.
# The final resize order (SEM_SEG_POSTPROCESS_BEFORE_INFERENCE) is a model setting of the
# official configs (decode_head.mask_upsample='original'), the same on every benchmark.
_base_ = [
    '../../datasets/pascal_context_59.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/san/pascal_context_59.txt',
    text_encoder=dict(whole_names=True))
