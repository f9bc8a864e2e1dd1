# SC-CLIP (Bai et al., arXiv 2411.15869) on OVShapes, training-free, evaluated on all
# 40 classes (seen / unseen / hIoU; nothing is trained, "seen" only names the split).
# As ../_base_/models/scclip_vit-b16.py on the tiny CLIP: anomaly resolution (local
# outlier factor, top 5 %), self-adjustment with intermediate correlations (beta
# 0.4), the class token added back (res_cls 0.3) and multi-level fusion; logit scale
# 40 (its benchmarks without background). Block indices are ViT-B/16's (outputs of
# blocks 0..10 enter or precede the last block 11); scaled to the tiny CLIP's 3
# blocks (outputs of blocks 0, 1; 1 enters the last block):
# * pre_adjust_idx 8 (after 75 % of the blocks) -> 1 (67 %); post_adjust_idx 3
#   (33 %) -> 0 (33 %);
# * multi-level range [3, 10): from post_adjust_idx up to, not including, the block
#   entering the last one -> [0, 1), block 0 only;
# * LOF neighbours: 30 of the 196 tokens of a 224-px window (14 x 14) -> the same
#   fraction of the 64 tokens of the 8 x 8 grid, 30 x 64 / 196 = 10 (the 5 %
#   contamination is a fraction already).
# Common settings (whole-image inference instead of 224/112 windows, the tiny CLIP's
# prompts, no background): ../_base_/models/training-free_tiny-clip.py.
#   python tools/test.py configs/ovshapes/scclip_tiny-clip_ovshapes.py
_base_ = [
    '../_base_/models/training-free_tiny-clip.py',
    '../_base_/datasets/ovshapes.py',
    '../_base_/schedules/inference_only.py',
    '../_base_/default_runtime.py',
]
train_dataloader = None
model = dict(
    backbone=dict(
        last_block_mode='scclip',
        last_block_options=dict(
            pre_adjust_idx=1,
            post_adjust_idx=0,
            multi_start_idx=0,
            multi_end_idx=1,
            res_cls=0.3,
            beta=0.4,
            lof_neighbors=10,
            lof_contamination=0.05)),
    decode_head=dict(logit_scale=40.0))
