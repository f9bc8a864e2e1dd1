# Protocol 'ovseg-r101c' (OVSeg R-101c, released model) on ovshapes: protocol 'ovseg'
# (the released per-benchmark CLIP_ENSEMBLE_WEIGHT) with this model's test resize,
# shortest edge 512, longest <= 2048 (configs/ovseg_R101c_vitB_bs32_120k.yaml).
_base_ = ['../ovseg/ovshapes.py']
