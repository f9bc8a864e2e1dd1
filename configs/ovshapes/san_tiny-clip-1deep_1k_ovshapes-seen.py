# SAN of san_tiny-clip_1k_ovshapes-seen.py with one deep block, the paper's
# last quarter of CLIP rounded to the tiny ViT's 3 blocks (the default until
# 2026-12-07): the 2 shallow CLIP blocks (plus the ln_pre tokens) feed the
# side adapter (after its blocks 0, 1 and 2) and the last block recognises
# the proposals. Kept as the record of that choice (configs/ovshapes/README.md,
# "SAN: how many deep blocks").
#   python tools/train.py configs/ovshapes/san_tiny-clip-1deep_1k_ovshapes-seen.py
_base_ = './san_tiny-clip_1k_ovshapes-seen.py'
model = dict(
    backbone=dict(out_indices=(0, 1)),
    decode_head=dict(start_block=2, side_adapter=dict(fusion_index=(0, 1, 2))))
