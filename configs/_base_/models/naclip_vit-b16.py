# NACLIP (Hajimiri et al., WACV 2025): key-key attention plus a Gaussian
# neighbourhood bias (std 5 patches) in CLIP's last block, without residual
# and FFN ("reduced" architecture). Defaults of github.com/sinahmr/NACLIP
# (naclip.py): logit scale 40, slide crop 224 / stride 112.
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/naclip/<benchmark>.py (tools/test.py --benchmark)
protocol = 'naclip'
model = dict(
    backbone=dict(
        last_block_mode='naclip', last_block_options=dict(gaussian_std=5.0)))
