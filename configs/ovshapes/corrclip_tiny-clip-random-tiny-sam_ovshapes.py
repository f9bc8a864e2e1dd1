# CorrCLIP (Zhang et al., ICCV 2025) on OVShapes, training-free, evaluated on all 40
# classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/corrclip_vit-b16-dino-b8.py on the tiny CLIP: the last block's
# values attended with proxy q+k similarities restricted to class-agnostic regions
# (scope reconstruction, tau 4, mask merging eps 0.2), spatial (alpha 1) and
# semantic (beta 0.5) branches, then the majority vote within the regions; logit
# scale 40. Two stand-ins, so this row measures the pipeline, not CorrCLIP:
# * the regions come from a RANDOMLY initialised tiny SAM (no SAM / SAM 2 weights
#   offline; the one of ./sam-clip_random-tiny-sam-tiny-clip_ovshapes.py: SAM's
#   architecture, 64 px, seed 0, 4 x 4 points, quality filters off since they reject
#   every random mask), computed on the fly instead of CorrCLIP's published SAM 2
#   masks. Its regions are meaningless and the scope restriction and the vote
#   follow them: the row measures nothing about SAM;
# * the proxy is the tiny CLIP's own image tower (`tiny_clip_vfm` of the base), not
#   DINO: no DINO exists offline (q + k of its last block, on the same 8 x 8 grid).
# Scaled to the tiny CLIP: spatial branch blocks = the reference's rule (blocks
# L-2-n .. L-3, i.e. 5..9 for ViT-B/16: below the block entering the last one) ->
# block 0 of 3. Common settings (whole-image inference instead of 336/112 windows,
# the tiny CLIP's prompts, no background): ../_base_/models/training-free_tiny-clip.py.
#   python tools/test.py configs/ovshapes/corrclip_tiny-clip-random-tiny-sam_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    type='MaskGuidedSegmentor',
    backbone=dict(
        type='CorrCLIPViT',
        vfm={{_base_.tiny_clip_vfm}},
        tau=4.0,
        merge_eps=0.2,
        alpha=1.0,
        beta=0.5,
        spatial_layers=(0, )),
    decode_head=dict(
        logit_scale=40.0,
        mask_refinement=dict(
            type='MaskVoteRefinement',
            mode='majority',
            generator=dict(
                type='SAMMaskGenerator',
                model_cfg=dict(img_size=64, patch_size=8, embed_dim=32, depth=1,
                               num_heads=2, out_chans=32, decoder_depth=1, seed=0),
                generator_cfg=dict(points_per_side=4, pred_iou_thresh=0.0,
                                   stability_score_thresh=0.0,
                                   min_mask_region_area=0)),
            cache_dir=None)))
