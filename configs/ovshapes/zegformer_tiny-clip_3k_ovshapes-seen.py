# ZegFormer of zegformer_tiny-clip_1k_ovshapes-seen.py trained three times as
# long (3000 iterations; poly decay to 3000, as `run_table.py --iters 3000`
# scales it). Screened on world seeds 11 and 12, not the table's worlds
# (configs/ovshapes/README.md, "Schedules"): unseen mIoU 16.36 at 1000
# iterations, 14.43 at 3000, while seen rose from 16.56 to 27.91: the longer
# schedule fits the seen names and loses unseen ones, so the table keeps the
# 1000-iteration config.
# (Figures measured with the second tiny CLIP, the `crowded` one. Re-screened
# with the current CLIP, README "Schedules with this CLIP": 1000 iterations
# again (unseen 15.75 at 1000, 13.45 at 3000; table worlds 1-3: 17.24 at 3000
# vs 18.28 at 1000; with the official resize order, inherited since 2026-12-07,
# 19.24 vs 20.29).)
# With the tiny CLIP's image tower as the mask model's backbone (inherited since
# 2026-12-07) the screen keeps 1000 iterations: unseen 31.54 / 22.86 at 3000 vs
# 37.09 / 28.84 at 1000 on worlds 11 / 12 (README "ZegFormer and OVSeg on the
# tiny CLIP's image tower").
#   python tools/train.py configs/ovshapes/zegformer_tiny-clip_3k_ovshapes-seen.py
_base_ = './zegformer_tiny-clip_1k_ovshapes-seen.py'
max_iters = 3000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
