# MaskCLIP (Zhou et al., ECCV 2022): the value path of CLIP's last attention
# (each token attends only to itself), residual and FFN kept, as in the
# original MaskCLIP; evaluated with the protocol of the ClearCLIP code
# (model_type='MaskCLIP'): logit scale 50, slide crop 448 / stride 224.
# last_block_mode='maskclip_noresidual' is the ClearCLIP code's default
# reading (ignore_residual=True).
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/clearclip/<benchmark>.py (tools/test.py --benchmark)
protocol = 'clearclip'
model = dict(
    backbone=dict(last_block_mode='maskclip'),
    decode_head=dict(logit_scale=50.0),
    test_cfg=dict(crop_size=(448, 448), stride=(224, 224)))
