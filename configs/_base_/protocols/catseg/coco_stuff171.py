# Protocol 'catseg' (CAT-Seg as released by its authors) on coco_stuff171:
# github.com/KU-CVLAB/CAT-Seg @ 6d3a188a, configs/vitb_384.yaml and vitl_336.yaml:
# TEST_CLASS_JSON "datasets/coco.json" (the released configs' own test set; not in eval.sh).
# Class names: the first name of each entry (classname.split(', ')[0],
# cat_seg/modeling/transformer/cat_seg_predictor.py get_text_embeds), in label order:
# configs/_base_/vocabularies/catseg/coco_stuff171.txt (tools/misc/official_class_names.py).
# The test resize stays the benchmark's (OpenCV); the released one is PIL's
# (the released configs' own test_pipeline).
_base_ = [
    '../../datasets/coco_stuff171.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(vocabulary='{{fileDirname}}/../../vocabularies/catseg/coco_stuff171.txt')
