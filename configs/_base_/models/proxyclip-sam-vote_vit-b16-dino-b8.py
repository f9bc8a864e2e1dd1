# ProxyCLIP + a region-mean vote within SAM ViT-H automatic masks (a combination no paper
# reports): the per-name similarities at the original size are averaged within each region
# (MaskVoteRefinement, mode 'mean') before the softmax. SAM's weights are not downloaded:
#   --cfg-options \
#     model.decode_head.mask_refinement.generator.checkpoint=/path/to/sam_vit_h_4b8939.pth
# Each image's masks are computed once and kept in cache_dir (keyed by image content and
# the generator's settings). Any benchmark: --benchmark KEY (the ProxyCLIP protocol).
_base_ = ['./proxyclip_vit-b16-dino-b8.py']
model = dict(
    decode_head=dict(
        mask_refinement=dict(
            type='MaskVoteRefinement',
            mode='mean',
            generator=dict(
                type='SAMMaskGenerator', model_type='vit_h', checkpoint=None,
                generator_cfg=dict(points_per_side=32, pred_iou_thresh=0.88,
                                   stability_score_thresh=0.95, min_mask_region_area=100)),
            cache_dir='~/.cache/mmovss/masks')))
