# ResCLIP (Yang et al., CVPR 2025) in its main setting (github.com/yvhangyang/ResCLIP @ 0e085f7,
# README "reproduce the main results": arch wo_resi, attn resclip, gaussian std 5): NACLIP's reduced
# last block (k-k attention + Gaussian neighbourhood bias, no residual, no FFN) with
# - RCS: the query-key attention of blocks 5..8 (layers 6-9 of ViT-B/16) averaged and mixed in
#   with rcs_weights = (tau_r, lambda_r);
# - SFR: a first pass scored against the vocabulary (PAMR 10 x (8, 16), softmax at the head's
#   logit scale, temp_thd) gives patch labels, whose prior re-weights the second pass with
#   sfr_weights = (tau_s, lambda_s).
# See mmovss/models/backbones/resclip_mode.py. Logit scale 40, no final PAMR, no area filter.
# Per-benchmark values (temp_thd, weights, thresholds): ../protocols/resclip/<benchmark>.py.
_base_ = ['./training-free_vit-b16.py']
protocol = 'resclip'
model = dict(
    backbone=dict(
        last_block_mode='resclip',
        last_block_options=dict(
            gaussian_std=5.0,
            rcs_layers=(5, 6, 7, 8),
            rcs_weights=(2.0, 0.3),
            sfr_weights=(1.8, 0.7),
            temp_thd=0.3,
            delete_same_entity=True,
            use_rcs=True,
            use_sfr=True,
            sfr_pamr=dict(type='PAMR', num_iter=10, dilations=(8, 16)))),
    decode_head=dict(logit_scale=40.0))
