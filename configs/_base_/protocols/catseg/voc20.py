# Protocol 'catseg' (CAT-Seg as released by its authors) on voc20:
# github.com/KU-CVLAB/CAT-Seg @ 6d3a188a, eval.sh: MODEL.SEM_SEG_HEAD.TEST_CLASS_JSON
# "datasets/voc20.json" for DATASETS.TEST voc_2012_test_sem_seg.
# Class names: the first name of each entry (classname.split(', ')[0],
# cat_seg/modeling/transformer/cat_seg_predictor.py get_text_embeds), in label order:
# configs/_base_/vocabularies/catseg/voc20.txt (tools/misc/official_class_names.py).
# The test resize stays the benchmark's (OpenCV); the released one is PIL's
# (the released configs' own test_pipeline).
_base_ = [
    '../../datasets/voc20.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(vocabulary='{{fileDirname}}/../../vocabularies/catseg/voc20.txt')
