# CorrCLIP (Zhang et al., ICCV 2025; github.com/zdk258/CorrCLIP, CorrCLIPv1 @ 103bc18):
# MetaCLIP ViT-B/16 (open_clip `ViT-B-16-quickgelu` / `metaclip_fullcc`, configs/base_config.py)
# whose last block attends CLIP's values with DINO ViT-B/8 q+k similarities restricted to
# class-agnostic masks (scope + value reconstruction, mask merging), plus the spatial and
# semantic branches (CorrCLIPViT); the same masks then correct the map by a majority vote
# (MaskVoteRefinement 'majority'). Logit scale 40, slide crop 336 / stride 112 (the
# reference's defaults). Masks: the SAM2 masks CorrCLIP publishes
# (huggingface.co/datasets/dk258/CorrCLIP, region_masks.zip, extracted to data/region_masks/),
# one folder per dataset set by the protocol base (../protocols/corrclip/<benchmark>.py).
# Offline, give the weights as files:
#   --cfg-options model.backbone.vfm.pretrained=/path/to/dino_vitbase8.pth \
#     model.backbone.pretrained=/path/to/metaclip_b16_fullcc.bin \
#     model.text_encoder.pretrained=/path/to/metaclip_b16_fullcc.bin
# Other mask generators (SAM / SAM 2 computed on the fly, cached):
#   model.decode_head.mask_refinement.generator=dict(type='SAM2MaskGenerator', ...)
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/corrclip/<benchmark>.py (tools/test.py --benchmark)
protocol = 'corrclip'
clip_model = 'ViT-B-16-quickgelu'
clip_pretrained = 'metaclip_fullcc'
model = dict(
    type='MaskGuidedSegmentor',
    backbone=dict(
        _delete_=True,
        type='CorrCLIPViT',
        model_name=clip_model,
        pretrained=clip_pretrained,
        vfm=dict(model_name='vit_base_patch8_224.dino', pretrained=True),
        # the reference maps CLIP's input to DINO's with UnNormalize(CLIP mean/std in [0, 1])
        # then Normalize(ImageNet): CLIP's constants x 255, not the preprocessor's rounded ones
        input_mean=[122.7709383, 116.7460125, 104.09373615],
        input_std=[68.5005327, 66.6321579, 70.32316305],
        tau=4.0,
        merge_eps=0.2,
        alpha=1.0,
        beta=0.5,
        spatial_layers=None,  # the reference's: blocks 5..9 of ViT-B/16
        pos_embed_resize='scale_factor',
        incomplete_patches='drop'),
    text_encoder=dict(model_name=clip_model, pretrained=clip_pretrained),
    decode_head=dict(
        logit_scale=40.0,
        mask_refinement=dict(
            type='MaskVoteRefinement',
            mode='majority',
            generator=dict(type='FileMaskGenerator', mask_dir='data/region_masks',
                           suffix='.npz', unsegmented='min'),
            cache_dir=None)),
    test_cfg=dict(crop_size=(336, 336), stride=(112, 112)))
