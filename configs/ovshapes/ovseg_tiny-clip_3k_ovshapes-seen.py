# OVSeg of ovseg_tiny-clip_1k_ovshapes-seen.py trained three times as long
# (3000 iterations; poly decay to 3000, as `run_table.py --iters 3000` scales
# it). Screened on world seeds 11 and 12, not the table's worlds
# (configs/ovshapes/README.md, "Schedules"): unseen mIoU 6.95 at 1000
# iterations, 9.10 at 3000 (seen 24.41 -> 31.91), so 3000 is the better
# length. On the three table worlds: seen 30.31, unseen 10.01, hIoU 14.99
# (1000 iterations: 24.94 / 9.82 / 14.07). The mask model of OVSeg's
# mask-adapted row (ovseg-mpt_tiny-clip_3k_ovshapes-seen.py).
# (Figures measured with the second tiny CLIP, the `crowded` one. Re-screened
# with the current CLIP, README "Schedules with this CLIP": 1000 iterations
# (table worlds 1-3, unseen: 11.89 at 3000 vs 13.36 at 1000; with the official
# resize order, inherited since 2026-12-07, 13.01 vs 14.60).)
# Since 2026-12-07 the mask model inherited from the 1k config fine-tunes the
# tiny CLIP's image tower, and 3000 iterations are OVSeg's choice again:
# screened on worlds 11 / 12, unseen 43.40 / 36.02 at 3000 vs 34.27 / 29.14 at
# 1000 (hIoU 53.87 / 47.00 vs 41.48 / 38.61; README "ZegFormer and OVSeg on
# the tiny CLIP's image tower"); this is OVSeg's row of record.
#   python tools/train.py configs/ovshapes/ovseg_tiny-clip_3k_ovshapes-seen.py
_base_ = './ovseg_tiny-clip_1k_ovshapes-seen.py'
max_iters = 3000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
# Ensemble weight 0.1 (the 1k config's 0.3 before 2026-12-07 evening): swept at 0.1-0.4 on the
# 3000-iteration checkpoints of worlds 11 / 12, which split between 0.1 and 0.3; a third
# screening world (13) broke the tie by the rule stated before its run (highest mean unseen
# mIoU over the three, hIoU not below 0.3's): unseen 42.51 (0.1), 41.80 (0.2), 41.08 (0.3),
# hIoU 53.78 / 51.76 (README "ZegFormer and OVSeg on the tiny CLIP's image tower").
model = dict(decode_head=dict(ensemble_weight=0.1))
