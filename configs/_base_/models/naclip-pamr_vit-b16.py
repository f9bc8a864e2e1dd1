# NACLIP with its post-processing: PAMR (10 iterations, dilations 8 and 16)
# on the logits at the original image size, guided by the network input
# (the default of github.com/sinahmr/NACLIP, `pamr_steps=10`).
_base_ = ['./naclip_vit-b16.py']
model = dict(
    decode_head=dict(
        pamr=dict(_delete_=True, type='PAMR', num_iter=10, dilations=(8, 16))))
