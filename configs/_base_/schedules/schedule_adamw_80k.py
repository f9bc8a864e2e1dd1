# AdamW with poly decay for 80k iterations (the recipe of most trained OVSS
# methods); methods set their own lr and CLIP learning-rate multipliers.
_base_ = ['mmseg::_base_/schedules/schedule_80k.py']
optimizer = dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
optim_wrapper = dict(type='OptimWrapper', optimizer=optimizer, clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=80000, by_epoch=False),
]
