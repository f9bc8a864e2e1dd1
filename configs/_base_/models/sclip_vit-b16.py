# SCLIP (Wang et al., ECCV 2024): correlative self-attention in CLIP's last
# block, softmax(q q^T s) + softmax(k k^T s), residual and FFN kept.
# Defaults of github.com/wangf3014/SCLIP (clip_segmentor.py): logit scale 40,
# slide crop 224 / stride 112, no PAMR.
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/sclip/<benchmark>.py (tools/test.py --benchmark)
protocol = 'sclip'
model = dict(backbone=dict(last_block_mode='sclip'))
