# Protocol 'ovseg' (OVSeg, released models) on pascal_context_459:
# MODEL.CLIP_ADAPTER.CLIP_ENSEMBLE_WEIGHT 0.6 of the released evaluation command for this
# benchmark (GETTING_STARTED.md of github.com/facebookresearch/ov-seg @ 36f49d49).
# Class names (the released evaluation, OVSeg.get_class_name_list in ovseg_model.py): the
# stripped stuff_classes registered for pascal_context_459_sem_seg_val (register_pascal_context.py),
# configs/_base_/vocabularies/ovseg/pascal_context_459.txt (tools/misc/official_class_names.py);
# each name is ONE prompt per template, commas included ("road, route";
# text_template.py PredefinedPromptExtractor): text_encoder.whole_names=True.
_base_ = [
    '../../datasets/pascal_context_459.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/ovseg/pascal_context_459.txt',
    text_encoder=dict(whole_names=True),
    decode_head=dict(ensemble_weight=0.6))
