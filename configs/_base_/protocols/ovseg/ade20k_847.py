# Protocol 'ovseg' (OVSeg, released models) on ade20k_847:
# CLIP_ENSEMBLE_WEIGHT 0.7 of the released configs (no per-benchmark value released;
# GETTING_STARTED.md of github.com/facebookresearch/ov-seg @ 36f49d49).
# Class names (the released evaluation, OVSeg.get_class_name_list in ovseg_model.py): the
# stripped stuff_classes registered for ade20k_full_sem_seg_val (register_ade20k_full.py),
# configs/_base_/vocabularies/ovseg/ade20k_847.txt (tools/misc/official_class_names.py);
# each name is ONE prompt per template, commas included ("road, route";
# text_template.py PredefinedPromptExtractor): text_encoder.whole_names=True.
# Test images decoded and resized with PIL to short side 640 (long side <= 2560), whole image,
# as the released evaluation (ov-seg @ 36f49d49): train_net.py L116 build_test_loader(mapper=None)
# -> open_vocab_seg/data/build.py L281-282 DatasetMapper(cfg, False) of detectron2 0.6
# (INSTALL.md): read_image (PIL) + ResizeShortestEdge(INPUT.MIN_SIZE_TEST 640, MAX_SIZE_TEST 2560;
# configs/ovseg_swinB_vitL_bs32_120k.yaml L79, L81); TEST.AUG.ENABLED False (L93: no TTA, no
# sliding window, test_time_augmentation.py L53); padded to a multiple of 32 in the model
# (MASK_FORMER.SIZE_DIVISIBILITY 32, open_vocab_seg/config.py L60), as ours.
_base_ = [
    '../../datasets/ade20k_847.py', '../../default_runtime.py',
    '../../schedules/inference_only.py', '../detectron2_pipelines.py'
]
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
train_dataloader = None
protocol_model = dict(
    vocabulary='{{fileDirname}}/../../vocabularies/ovseg/ade20k_847.txt',
    text_encoder=dict(whole_names=True),
    decode_head=dict(ensemble_weight=0.7))
