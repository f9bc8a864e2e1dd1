# LSeg's released ADE20K demo model (demo_e200.ckpt of github.com/isl-org/lang-seg
# @ bb00b219, README "Download Demo Model": ViT-L/16 image encoder, CLIP ViT-B/32
# text encoder), built as the official code builds it (lseg_demo.ipynb:
# LSegModule.load_from_checkpoint(backbone='clip_vitl16_384', num_features=256,
# arch_option=0, block_depth=0, activation='lrelu')):
# - image encoder: timm vit_large_patch16_384, blocks 5/11/17/23 (LSeg's hooks),
#   class-token readout 'project', position embedding resized bilinearly
#   (modules/models/lseg_vit.py: forward_flex, _make_vit_b16_backbone);
# - DPT decoder: reassemble 256/512/1024/1024, 3x3 convs to 256, four fusion blocks with
#   BN (LSegNet: use_bn=True), 1x1 conv to 512, no spatial regularisation (arch_option=0);
# - logits (1/0.07) * cos(pixel, text) with the temperature fixed, computed in half
#   precision against the fp16 text features of a CUDA clip.load, then 2x bilinear
#   upsampling (align_corners=True);
# - text: OpenAI CLIP ViT-B/32 (QuickGELU) on the bare label, no template; the ADE-150
#   labels are the official label_files/ade20k_objectInfo150.txt parse;
# - input normalisation mean = std = 0.5 (LSegModule: norm_mean / norm_std).
# Weights: convert the Lightning checkpoint first (every key accounted for):
#   python tools/model_converters/lseg_official_to_mmovss.py demo_e200.ckpt lseg_demo.pth
#   python tools/test.py \
#       configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py \
#       lseg_demo.pth
# Evaluation as released (test_lseg.py: additional_utils/encoding_models.py MultiEvalModule,
# base_size 520, crop_size 480 of LSegModule): the original image (no test resize), logits
# summed over the long sides ceil(520 * s), s = 0.5 ... 1.75, and horizontal flips, each scale
# in 480 windows at stride 320 padded black (MultiScaleFlipEncoderDecoder, test_cfg mode
# 'multiscale_flip'; proven equal to the official evaluator by tests/test_lseg_multiscale.py).
_base_ = [
    '../_base_/models/lseg_vit-b16.py',
    '../_base_/datasets/ade20k_150.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/inference_only.py',
]
clip_model = 'ViT-B-32'  # the text tower (the base's variable names ViT-B/16)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(480, 480))
model = dict(
    type='MultiScaleFlipEncoderDecoder',
    data_preprocessor=data_preprocessor,
    vocabulary='{{fileDirname}}/../_base_/vocabularies/lseg/ade20k_150.txt',
    backbone=dict(
        _delete_=True,
        type='TimmViT',
        model_name='vit_large_patch16_384',
        pretrained=False,
        out_indices=(5, 11, 17, 23),
        output_cls_token=True,
        # every ViT weight comes from the released checkpoint: the random init of 300M
        # parameters is skipped (a model built without the checkpoint is not usable)
        skip_init=True),
    text_encoder=dict(
        type='LSegTextEncoder',
        model_name=clip_model,
        pretrained=None,  # the checkpoint holds LSeg's copy of CLIP ViT-B/32
        quick_gelu=True,
        precision='fp16',
        templates=['{}']),
    decode_head=dict(
        in_channels=1024,
        embed_dim=512,
        channels=256,
        post_process_channels=(256, 512, 1024, 1024),
        patch_size=16,
        readout_type='project',
        logit_scale=1 / 0.07,
        learn_logit_scale=False,
        logits_dtype='float16',
        reg_block=None),
    test_cfg=dict(
        mode='multiscale_flip',
        base_size=520,
        scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75),
        flip=True,
        crop_size=(480, 480),
        stride=(320, 320),  # int(480 * 2 / 3)
        pad_pixel=0,  # black: pad_image's -mean / std
        crop_batch_size=4))
test_pipeline = [
    dict(type='LoadImageFromFile'),  # the original size: the evaluator resizes
    dict(type='LoadSegAnnotations'),
    dict(type='PackSegInputs')
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
custom_hooks = []
train_dataloader = None
