# Protocol 'ovseg' (OVSeg, released models) on ade20k_150:
# CLIP_ENSEMBLE_WEIGHT 0.7 of the released configs (no per-benchmark value released;
# GETTING_STARTED.md of github.com/facebookresearch/ov-seg @ 36f49d49).
# Class names (the released evaluation, OVSeg.get_class_name_list in ovseg_model.py): the
# stripped stuff_classes registered for detectron2's ade20k_sem_seg_val (builtin.py;
# data/datasets/builtin_meta.py ADE20K_SEM_SEG_CATEGORIES, as SAN's file),
# configs/_base_/vocabularies/ovseg/ade20k_150.txt (tools/misc/official_class_names.py);
# each name is ONE prompt per template, commas included ("road, route";
# text_template.py PredefinedPromptExtractor): text_encoder.whole_names=True.
_base_ = [
    '../../datasets/ade20k_150.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/ovseg/ade20k_150.txt',
    text_encoder=dict(whole_names=True),
    decode_head=dict(ensemble_weight=0.7))
