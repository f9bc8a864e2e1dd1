# ProxyCLIP + region-mean vote within SAM ViT-H masks on voc21 (example of a mask-refined
# method; no published number). Other benchmarks: tools/test.py THIS_FILE --benchmark KEY.
_base_ = ['../_base_/models/proxyclip-sam-vote_vit-b16-dino-b8.py',
          '../_base_/protocols/proxyclip/voc21.py']
model = {{_base_.protocol_model}}
