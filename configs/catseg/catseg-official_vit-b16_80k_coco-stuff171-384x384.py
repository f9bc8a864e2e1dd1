# CAT-Seg ViT-B/16 as released by its authors: github.com/KU-CVLAB/CAT-Seg
# (commit 6d3a188a), configs/vitb_384.yaml evaluated by eval.sh, weights
# https://huggingface.co/spaces/hamacojr/CAT-Seg-weights/resolve/main/model_base.pth
# (official key layout; recognised and converted by mmovss.converters.catseg_official,
# or once with tools/model_converters/catseg_official_to_mmovss.py).
# The architecture is ../_base_/models/catseg_vit-b16.py. What differs from our default,
# as released (proven equal to the official code by tests/test_official_parity.py):
# * the dense last CLIP block adds the *class token's* residual to every token
#   (model_vpt.py forward_dense): last_block_mode='catseg';
# * only the first synonym of each class name is embedded (get_text_embeds): synonyms='first';
# * CLIP's normalisation as cfg.MODEL.CLIP_PIXEL_MEAN / CLIP_PIXEL_STD (std 70.3231630);
# * evaluation as eval.sh (TEST.SLIDING_WINDOW True, POOLING_SIZES [1,1]): the image resized to
#   640x640 ignoring its aspect, 384 windows at stride 256 plus a global 384 view, sigmoid
#   probabilities averaged, resized to the original size (CATSegEncoderDecoder, 'catseg_slide');
# * CLIP weights come from the released file (both towers were fine-tuned): pretrained=None,
#   OpenAI's QuickGELU;
# * test images decoded and resized (short side 640, long side <= 2560) with PIL, as
#   detectron2's ResizeShortestEdge (also under --benchmark on the six benchmarks eval.sh
#   evaluates: the catseg protocol; elsewhere the benchmark's pipeline);
# * class names: the released evaluation's own, the first name of each entry of
#   datasets/<benchmark>.json (TEST_CLASS_JSON; coco.json for this config's own COCO-Stuff),
#   _base_/vocabularies/catseg/, not the benchmark vocabulary (mmovss/vocab/names/).
# protocol = 'catseg': --benchmark KEY uses _base_/protocols/catseg/KEY.py (CAT-Seg's names on
# the benchmarks eval.sh evaluates and COCO-Stuff; the benchmark's names elsewhere).
#   python tools/test.py configs/catseg/catseg-official_vit-b16_80k_coco-stuff171-384x384.py \
#       model_base.pth --benchmark ade20k_150
_base_ = ['./catseg_vit-b16_80k_coco-stuff171-384x384.py',
          '../_base_/protocols/detectron2_pipelines.py']
model = dict(
    type='CATSegEncoderDecoder',
    vocabulary='{{fileDirname}}/../_base_/vocabularies/catseg/coco_stuff171.txt',
    data_preprocessor=dict(
        mean=[122.7709383, 116.7460125, 104.09373615],
        std=[68.5005327, 66.6321579, 70.3231630]),
    backbone=dict(pretrained=None, quick_gelu=True, last_block_mode='catseg'),
    text_encoder=dict(pretrained=None, quick_gelu=True, synonyms='first'),
    test_cfg=dict(
        _delete_=True,
        mode='catseg_slide',
        crop_size=(384, 384),
        stride=(256, 256),
        resize_to=(640, 640),
        global_view=True,
        size_divisor=32,
        crop_batch_size=5,
        resize_class_chunk=16))
custom_hooks = []  # the vocabulary is the released evaluation's, not the dataset's
protocol = 'catseg'  # --benchmark KEY: configs/_base_/protocols/catseg/KEY.py
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
