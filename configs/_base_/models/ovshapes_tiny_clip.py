# The OVShapes tiny CLIP (shipped in mmovss/assets/, made by
# tools/ovshapes/pretrain_clip.py; see its .json record) as image and text
# towers of an open-vocabulary segmentor. Heads are set by each config.
tiny_clip_cfg = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=64, layers=3, width=128, patch_size=8, head_width=32),
    text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=3),
)
tiny_clip_weights = '{{fileDirname}}/../../../mmovss/assets/ovshapes_tiny_clip.pt'
templates = ['a {} object.', 'a picture of {}.', '{}.']
# The image tower as a mask model's backbone, merged into `model.backbone`
# (`backbone={{_base_.NAME}}`): blocks 0, 1, 2, 2 as the four maps on the 8x8
# patch grid, either fine-tuned whole (LSeg, ZegFormer, OVSeg; with a backbone
# lr_mult in the config) or frozen with NACLIP's last block (FC-CLIP, OpenSeg).
# NACLIP's Gaussian std on this tower's token grid (also the training-free NACLIP
# and ResCLIP rows and the light decoder): 5 patches on the 14 x 14 grid of
# ViT-B/16's 224-px windows, scaled to the 8 x 8 grid, 5 x 8 / 14 = 2.86 patches.
naclip_gaussian_std = 5.0 * 8 / 14
tiny_clip_tower_finetuned = dict(
    out_indices=(0, 1, 2, 2),
    unfrozen=('conv1.*', 'class_embedding', 'positional_embedding', 'ln_pre.*',
              'transformer.*'))
tiny_clip_tower_naclip = dict(
    type='TrainingFreeCLIPViT', out_indices=(0, 1, 2, 2), last_block_mode='naclip',
    last_block_options=dict(gaussian_std=naclip_gaussian_std))

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[122.771, 116.746, 104.094],
    std=[68.501, 66.632, 70.323],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(64, 64))
model = dict(
    type='OpenVocabEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='OpenCLIPViT',
        model_name=None,
        model_cfg=tiny_clip_cfg,
        pretrained=tiny_clip_weights,
        out_indices=(-1, ),
        last_block_mode='vanilla'),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        model_name=None,
        model_cfg=tiny_clip_cfg,
        pretrained=tiny_clip_weights,
        templates=templates),
    decode_head=dict(type='CLIPCosineHead', in_channels=64),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
custom_hooks = [dict(type='DatasetVocabularyHook')]
