# ClearCLIP (Lan et al., ECCV 2024): softmax(q q^T s) attention in CLIP's
# last block, no residual connection, no FFN. Defaults of
# github.com/mc-lan/ClearCLIP (clearclip_segmentor.py, model_type='ClearCLIP',
# ignore_residual=True): logit scale 50, slide crop 448 / stride 224.
_base_ = ['./training-free_vit-b16.py']
# per-benchmark settings: ../protocols/clearclip/<benchmark>.py (tools/test.py --benchmark)
protocol = 'clearclip'
model = dict(
    backbone=dict(last_block_mode='clearclip'),
    decode_head=dict(logit_scale=50.0),
    test_cfg=dict(crop_size=(448, 448), stride=(224, 224)))
