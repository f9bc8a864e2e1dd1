# ResCLIP on pascal_context_60 (cfg_context60.py: temp_thd 0.3, RCS (2.0, 0.3), SFR (1.8, 0.7),
# prob_thd 0.1); other benchmarks: tools/test.py --benchmark. Published mIoU: README.md here.
_base_ = ['../_base_/models/resclip_vit-b16.py',
          '../_base_/protocols/resclip/pascal_context_60.py']
model = {{_base_.protocol_model}}
