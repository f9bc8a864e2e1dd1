# Protocol 'catseg' (CAT-Seg as released by its authors) on voc20:
# github.com/KU-CVLAB/CAT-Seg @ 6d3a188a, eval.sh: MODEL.SEM_SEG_HEAD.TEST_CLASS_JSON
# "datasets/voc20.json" for DATASETS.TEST voc_2012_test_sem_seg.
# Class names: the first name of each entry (classname.split(', ')[0],
# cat_seg/modeling/transformer/cat_seg_predictor.py get_text_embeds), in label order:
# configs/_base_/vocabularies/catseg/voc20.txt (tools/misc/official_class_names.py).
# Test images decoded and resized with PIL to short side 640 (long side <= 2560), as
# detectron2's ResizeShortestEdge with the released configs' INPUT.MIN/MAX_SIZE_TEST.
_base_ = [
    '../../datasets/voc20.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
# Only the first name of each class is embedded (get_text_embeds: synonyms='first'; set by
# every base of the family, voc20b.py embeds all of its background names).
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/catseg/voc20.txt',
    text_encoder=dict(synonyms='first'))
