# FC-CLIP ConvNeXt-L as released by its authors: github.com/bytedance/fc-clip (commit
# 2b0bbe21), configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_*.yaml,
# trained on COCO-Panoptic (133 classes, 50 epochs = 368,750 iterations at batch 16, 1024x1024
# LSJ crops). Weights: the README's "Model Zoo" row "FC-CLIP (ConvNeXt-Large)", Google Drive
# https://drive.google.com/file/d/1-91PIns86vyNaL3CzMmDD39zKGnPMtvj/view (official key layout;
# recognised and converted by mmovss.converters.fcclip_official, or once with
# tools/model_converters/fcclip_official_to_mmovss.py).
# The architecture is ../_base_/models/fcclip_convnext-l.py. What differs from our default, as
# released (proven equal to the official code by tests/test_official_parity.py, fixture
# tests/data/official_parity/fcclip/seed0):
# * out-of-vocabulary branch: the last ConvNeXt stage is mask-pooled and the CLIP head
#   (trunk.head norm + visual.head MLP) is applied to each pooled vector
#   (CLIP.visual_prediction_forward_convnext): FCCLIPEncoderDecoder, backbone
#   dense_output='features', head ov_pooling='features';
# * MODEL.FC_CLIP.ENSEMBLE_ON_VALID_MASK False: empty masks are ensembled too
#   (ensemble_valid_mask=False);
# * mask logits upsampled to the padded input before the sigmoid (FCCLIP.forward):
#   mask_upsample='logits', the batch padded to 32 by the data preprocessor (ImageList,
#   SIZE_DIVISIBILITY 32). This is the semantic-only evaluation (PANOPTIC_ON False: A-847,
#   PC-59, PC-459, PAS-20/21). The A-150 and Cityscapes evaluations (PANOPTIC_ON True) also
#   resize the mask logits to the original size before the sigmoid (mask_upsample='original'):
#   `--benchmark KEY` sets it, as below;
# * CLIP's temperature clamped at 100 for the out-of-vocabulary logits (ov_logit_scale_max);
# * classes seen in training = COCO-Panoptic's 133 names with FC-CLIP's synonyms
#   (openseg_classes.get_coco_categories_with_prompt_eng): coco-panoptic133_seen-names.txt;
# * test images decoded and resized with PIL, short side 800, long side <= 1333 (detectron2's
#   default ResizeShortestEdge).
# Per-benchmark evaluation (protocol 'fcclip', ../_base_/protocols/fcclip/<KEY>.py, from the
# official configs/coco/panoptic-segmentation/fcclip/fcclip_convnext_large_eval_*.yaml):
# `--benchmark KEY` sets the test resize (Cityscapes: 1024 / 2560), mask_upsample ('original'
# for A-150 and Cityscapes, 'logits' otherwise) and FC-CLIP's class names (VOC-21: its own
# background words, ../_base_/vocabularies/fcclip/voc21.txt).
# The CLIP towers keep their open_clip pretrained tag: the released file holds the same frozen
# CLIP (overwritten on load), and CLIP's temperature (not a persistent key of our text encoder)
# comes from it.
#   python tools/test.py configs/fcclip/fcclip-official_convnext-l_368k_coco-panoptic-1024x1024.py \
#       fcclip_cocopan.pth --benchmark ade20k_847
_base_ = ['./fcclip_convnext-l_80k_coco-stuff171-1024x1024.py',
          '../_base_/protocols/detectron2_pipelines.py']
protocol = 'fcclip'
model = dict(
    type='FCCLIPEncoderDecoder',
    data_preprocessor=dict(test_cfg=dict(size_divisor=32)),
    backbone=dict(dense_output='features'),
    decode_head=dict(
        seen_vocabulary='{{fileDirname}}/coco-panoptic133_seen-names.txt',
        alpha=0.4, beta=0.8, ensemble=True, ensemble_valid_mask=False,
        ov_pooling='features', mask_upsample='logits', ov_logit_scale_max=100.0))
test_pipeline = {{_base_.detectron2_pipelines.short_800_long_1333}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
