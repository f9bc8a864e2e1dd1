# SC-CLIP on voc21 (cfg_voc21.py: logit scale 50, prob_thd 0.15, area_thd 0.1); other
# benchmarks: tools/test.py --benchmark. Published mIoU: README.md of this folder.
_base_ = ['../_base_/models/scclip_vit-b16.py', '../_base_/protocols/scclip/voc21.py']
model = {{_base_.protocol_model}}
