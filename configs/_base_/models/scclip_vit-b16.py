# SC-CLIP (Bai et al., arXiv 2411.15869; github.com/SuleBai/SC-CLIP @ 0417ba9): the last block
# resolves anomaly tokens of block 10's output (local outlier factor, k 30, top 5 %), aggregates
# features with the correlations of block 8 (pre_adjust_idx) and block 3 (post_adjust_idx)
# thresholded at beta 0.4, attends with 0.5 (softmax(G) + softmax(k k^T s)) on patch tokens, adds
# the class token scaled by res_cls 0.3, and fuses the sum of blocks 3..9 (multi-level).
# See mmovss/models/backbones/scclip_mode.py. The indices are ViT-B/16's (12 blocks).
# Per-benchmark values (logit scale, thresholds): ../protocols/scclip/<benchmark>.py.
_base_ = ['./training-free_vit-b16.py']
protocol = 'scclip'
model = dict(
    backbone=dict(
        last_block_mode='scclip',
        last_block_options=dict(
            pre_adjust_idx=8,
            post_adjust_idx=3,
            multi_start_idx=3,
            multi_end_idx=10,
            res_cls=0.3,
            beta=0.4,
            lof_neighbors=30,
            lof_contamination=0.05)),
    decode_head=dict(logit_scale=40.0))
