# NACLIP + majority vote within pre-computed masks on voc21 (example of a mask-refined method;
# no published number). Other benchmarks: tools/test.py THIS_FILE --benchmark KEY.
_base_ = ['../_base_/models/naclip-mask-vote_vit-b16.py',
          '../_base_/protocols/naclip/voc21.py']
model = {{_base_.protocol_model}}
