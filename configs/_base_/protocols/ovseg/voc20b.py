# Protocol 'ovseg' (OVSeg, released models) on voc20b (PAS-20b, VOC-21 with
# CAT-Seg's background names):
# CLIP_ENSEMBLE_WEIGHT 0.7 of the released configs (no per-benchmark value released;
# GETTING_STARTED.md of github.com/facebookresearch/ov-seg @ 36f49d49).
# Class names: not a benchmark of the released evaluation (GETTING_STARTED.md evaluates
# ADE-150/847, PC-59/459, VOC-20); mmovss's choice: the benchmark's names with their
# synonyms (vocabulary=None, DatasetVocabularyHook; whole_names=False).
_base_ = [
    '../../datasets/voc20b.py', '../../default_runtime.py',
    '../../schedules/inference_only.py'
]
train_dataloader = None
protocol_model = dict(
    vocabulary=None, text_encoder=dict(whole_names=False),
    decode_head=dict(ensemble_weight=0.7))
