# ZegFormer R-101 + CLIP ViT-B/16 as released by its authors
# (github.com/dingjiansw101/ZegFormer, commit 8cb9e8fb): checkpoint
# zegformer_R101_bs32_60k_vit16_coco-stuff.pth from the README's Google Drive folder,
# trained on the 156 seen COCO-Stuff classes; evaluated as
# configs/coco-stuff/zegformer_R101_bs32_60k_vit16_coco-stuff_gzss_eval.yaml (generalised
# zero-shot, 171 classes). Convert it first (official key layout):
#   python tools/model_converters/zegformer_official_to_mmovss.py \
#       zegformer_R101_bs32_60k_vit16_coco-stuff.pth zegformer_r101_coco.pth
#   python tools/test.py THIS_CONFIG zegformer_r101_coco.pth
# The CLIP ViT-B/16 weights (image crops, text) are OpenAI's (pretrained='openai'), as the
# official code loads them; the checkpoint holds no CLIP.
# What this config sets differently from ../_base_/models/zegformer_r101_vit-b16.py, as released:
# * backbone: detectron2's ResNet (basic stem, STRIDE_IN_1X1 False, FrozenBN), not ResNetV1c;
# * segment branch text: PROMPT_ENSEMBLE_TYPE 'single' of the gzss config
#   ('A photo of a {} in the scene'; 'imagenet_select' in training and the R-50 config);
#   CLIP branch text: IMAGENET_TEMPLATES_SELECT_CLIP (32 templates);
# * "no object" embedding used unnormalised; mask logits upsampled to the image before the
#   crops and the per-pixel scores; crops: ZegFormer's boxes (inclusive maxima, zero-area
#   boxes -> whole image), image masked then cropped (roi_align, 224), every query classified
#   (empty masks too); GroupNorm 32 groups; GZERO_CALIBRATE 0.1 on the seen classes.
# * the official code runs CLIP in fp16 on GPU; add
#   --cfg-options model.test_cfg.inference_dtype=fp16 for the same (autocast; float32 here).
_base_ = ['../_base_/datasets/coco_stuff171.py', '../_base_/default_runtime.py',
          '../_base_/protocols/detectron2_pipelines.py']
clip_model = 'ViT-B-16'
clip_pretrained = 'openai'
templates_single = [
    'A photo of a {} in the scene',
]
templates_imagenet_select = [
    'itap of a {}.',
    'a bad photo of the {}.',
    'a origami {}.',
    'a photo of the large {}.',
    'a {} in a video game.',
    'art of the {}.',
    'a photo of the small {}.',
    'A photo of a {} in the scene',
]
# IMAGENET_TEMPLATES_SELECT_CLIP (mask_former/third_party/imagenet_templates.py)
templates_clip = [
    'a bad photo of the {}.',
    'a photo of the large {}.',
    'a photo of the small {}.',
    'a cropped photo of a {}.',
    'This is a photo of a {}',
    'This is a photo of a small {}',
    'This is a photo of a medium {}',
    'This is a photo of a large {}',
    'This is a masked photo of a {}',
    'This is a masked photo of a small {}',
    'This is a masked photo of a medium {}',
    'This is a masked photo of a large {}',
    'This is a cropped photo of a {}',
    'This is a cropped photo of a small {}',
    'This is a cropped photo of a medium {}',
    'This is a cropped photo of a large {}',
    'A photo of a {} in the scene',
    'a bad photo of the {} in the scene',
    'a photo of the large {} in the scene',
    'a photo of the small {} in the scene',
    'a cropped photo of a {} in the scene',
    'a photo of a masked {} in the scene',
    'There is a {} in the scene',
    'There is the {} in the scene',
    'This is a {} in the scene',
    'This is the {} in the scene',
    'This is one {} in the scene',
    'There is a masked {} in the scene',
    'There is the masked {} in the scene',
    'This is a masked {} in the scene',
    'This is the masked {} in the scene',
    'This is one masked {} in the scene',
]
# COCO-Stuff classes seen in training (171 minus the 15 unseen: cow, giraffe, suitcase,
# frisbee, skateboard, carrot, scissors, cardboard, clouds, grass, playingfield, river, road,
# tree, wall-concrete; register_coco_stuff.py COCO_CATEGORIES_Unseen)
seen_classes = [
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat',
    'dog', 'horse', 'sheep', 'elephant', 'bear', 'zebra', 'backpack', 'umbrella', 'handbag',
    'tie', 'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove',
    'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'hot dog', 'pizza', 'donut',
    'cake', 'chair', 'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
    'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'teddy bear', 'hair drier', 'toothbrush', 'banner',
    'blanket', 'branch', 'bridge', 'building', 'bush', 'cabinet', 'cage', 'carpet',
    'ceiling-other', 'ceiling-tile', 'cloth', 'clothes', 'counter', 'cupboard', 'curtain',
    'desk-stuff', 'dirt', 'door-stuff', 'fence', 'floor-marble', 'floor-other', 'floor-stone',
    'floor-tile', 'floor-wood', 'flower', 'fog', 'food-other', 'fruit', 'furniture-other',
    'gravel', 'ground-other', 'hill', 'house', 'leaves', 'light', 'mat', 'metal',
    'mirror-stuff', 'moss', 'mountain', 'mud', 'napkin', 'net', 'paper', 'pavement', 'pillow',
    'plant-other', 'plastic', 'platform', 'railing', 'railroad', 'rock', 'roof', 'rug', 'salad',
    'sand', 'sea', 'shelf', 'sky-other', 'skyscraper', 'snow', 'solid-other', 'stairs', 'stone',
    'straw', 'structural-other', 'table', 'tent', 'textile-other', 'towel', 'vegetable',
    'wall-brick', 'wall-other', 'wall-panel', 'wall-stone', 'wall-tile', 'wall-wood',
    'water-other', 'waterdrops', 'window-blind', 'window-other', 'wood']
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size_divisor=32)
model = dict(
    type='TwoStageEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary=None,
    backbone=dict(type='D2ResNet', depth=101, stem_channels=64, res2_channels=256,
                  width_per_group=64, stride_in_1x1=False, norm='FrozenBN'),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                      pretrained=clip_pretrained, templates=templates_single,
                      cache_dir='~/.cache/mmovss/text_embeddings'),
    decode_head=dict(
        type='ZegFormerHead',
        in_channels=[256, 512, 1024, 2048], embed_dim=512,
        channels=256, mask_channels=256, num_queries=100, num_layers=6,
        num_heads=8, ffn_channels=2048, dropout=0.1, temperature=0.01,
        mode='fusion', fusion_lambda=2. / 3., calibration=0.1,
        seen_vocabulary=seen_classes,
        normalize_void=False, upsample_masks=True, norm_groups=32,
        region_text_encoder=dict(type='OpenCLIPTextEncoder', model_name=clip_model,
                                 pretrained=clip_pretrained, templates=templates_clip,
                                 cache_dir='~/.cache/mmovss/text_embeddings'),
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_name=clip_model, pretrained=clip_pretrained),
            crop_size=224, mask_fill='mean', crop_style='cropmask', box_style='zegformer',
            mask_before_crop=True, classify_empty=True, crop_batch_size=100)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
# detectron2's test resize (ResizeShortestEdge 640, max 2560) on PIL-decoded images
test_pipeline = {{_base_.detectron2_pipelines.short_640_long_2560}}
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
