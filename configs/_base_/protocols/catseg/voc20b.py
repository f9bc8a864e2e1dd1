# Protocol 'catseg' (CAT-Seg as released by its authors) on voc20b (PAS-20b):
# github.com/KU-CVLAB/CAT-Seg @ 6d3a188a, eval.sh "Pascal VOC-b": MODEL.SEM_SEG_HEAD.
# TEST_CLASS_JSON "datasets/voc20b.json" for DATASETS.TEST voc_2012_test_background_sem_seg
# (VOC 2012 val, labels annotations_detectron2_bg of datasets/prepare_voc.py: background kept).
# The json lists the 20 VOC classes, then 39 names that train_net.py's VOCbEvaluator scores as
# background (pred[pred >= 20] = 20); the mIoU is over the 21 labels, background included.
# Class names: configs/_base_/vocabularies/catseg/voc20b.txt (tools/misc/official_class_names.py):
# the 39 names as the synonyms of class 0 (background), then the VOC classes. Every json entry
# is embedded (its first name, as get_text_embeds), so all synonyms are: synonyms='all'.
# CATSegEncoderDecoder's CAT-Seg modes reduce names to classes (max) only after the
# probabilities are at the original size, where the released evaluator maps its argmax.
# Test images decoded and resized with PIL to short side 640 (long side <= 2560), as
# detectron2's ResizeShortestEdge with the released configs' INPUT.MIN/MAX_SIZE_TEST.
_base_ = [
    '../../datasets/voc20b.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/catseg/voc20b.txt',
    text_encoder=dict(synonyms='all'))
