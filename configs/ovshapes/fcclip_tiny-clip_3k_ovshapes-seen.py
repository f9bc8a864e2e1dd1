# FC-CLIP of fcclip_tiny-clip_1k_ovshapes-seen.py trained three times as long
# (3000 iterations; warm-up and poly decay scaled by 3, as `run_table.py
# --iters 3000` scales them). Screened on world seeds 11 and 12, not the
# table's worlds (configs/ovshapes/README.md, "Schedules"): seen mIoU 38.19 ->
# 50.22 but unseen 16.20 -> 14.02 (hIoU 22.64 -> 21.85), so FC-CLIP keeps
# 1000 iterations (fcclip_tiny-clip_1k_ovshapes-seen.py); kept to reproduce
# the screen.
# (Figures measured with the second tiny CLIP, the `crowded` one. Re-screened
# with the current CLIP, README "Schedules with this CLIP": 1000 iterations
# again; that screen ran with the ClearCLIP last block, before the 1k config
# moved to NACLIP's, which this config inherits, as it inherits the official
# resize order and the ensemble weights 0.2 / 0.2 chosen on 2026-12-07. Table
# worlds 1-3 with both: unseen 32.54 vs 49.55 at 1000 iterations, seen 75.09
# vs 71.86; before them 13.57 vs 29.62.)
#   python tools/train.py configs/ovshapes/fcclip_tiny-clip_3k_ovshapes-seen.py
_base_ = './fcclip_tiny-clip_1k_ovshapes-seen.py'
max_iters = 3000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=150),
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=150, end=max_iters, by_epoch=False),
]
