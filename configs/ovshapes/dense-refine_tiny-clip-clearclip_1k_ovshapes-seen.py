# The light decoder of dense-refine_tiny-clip_1k_ovshapes-seen.py with the frozen
# tiny CLIP's last block in ClearCLIP mode (Lan et al., ECCV 2024: query-query
# attention, no residual / FFN) instead of NACLIP's: the light decoder's default
# until 2026-12-07, kept as the ablation of that swap (configs/ovshapes/README.md,
# "Schedules with this CLIP": unseen 67.91 with NACLIP's block vs 60.60 with this
# one over the table's worlds; screened first on world seeds 11 and 12).
#   python tools/train.py configs/ovshapes/dense-refine_tiny-clip-clearclip_1k_ovshapes-seen.py
_base_ = './dense-refine_tiny-clip_1k_ovshapes-seen.py'
model = dict(
    backbone=dict(last_block_mode='clearclip', last_block_options=dict(_delete_=True)))
