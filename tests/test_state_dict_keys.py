"""Checkpoint keys of the tiny mask-classification and CAT-Seg models.

The files in ``tests/data/state_dict_keys/`` were written from these configs
at commit f3b0dbb, before the decoder layers of FC-CLIP and ZegFormer were
merged and CAT-Seg's towers moved (issue #16). Converters
(``mmovss/converters``), the parity fixtures and saved checkpoints depend on
these names, their order and their shapes, so a reorganisation must keep
them.
"""
import copy
import json
from pathlib import Path

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.testing.clip import tiny_clip_cfg

from mmseg.registry import MODELS

KEYS_DIR = Path(__file__).parent / 'data' / 'state_dict_keys'
VIT = tiny_clip_cfg('vit')
VIT4 = tiny_clip_cfg('vit', vision_cfg=dict(layers=4), quick_gelu=True)
CONVNEXT = tiny_clip_cfg('convnext')
RESNET = dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=8,
              norm_cfg=dict(type='BN'))
TWO_STAGE = dict(type='TwoStageEncoderDecoder', backbone=RESNET,
                 text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=VIT,
                                   templates='single'))
MASKFORMER = dict(in_channels=[8, 16, 32, 64], embed_dim=32, channels=32,
                  mask_channels=32, num_queries=4, num_layers=2, num_heads=2,
                  ffn_channels=64)
FINETUNE = ('transformer.resblocks.*.attn.in_proj_weight', )

CONFIGS = dict(
    fcclip=dict(
        type='OpenVocabEncoderDecoder',
        backbone=dict(type='OpenCLIPConvNeXt', model_cfg=CONVNEXT),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CONVNEXT,
                          templates='single'),
        decode_head=dict(
            type='FCCLIPHead', in_channels=[40, 80, 160, 320], embed_dim=32,
            channels=32, num_queries=5, num_layers=3, num_heads=2,
            ffn_channels=64,
            pixel_decoder=dict(type='MSDeformAttnPixelDecoder',
                               mask_channels=32, num_layers=1, num_heads=2,
                               ffn_channels=64))),
    zegformer=dict(
        TWO_STAGE,
        decode_head=dict(
            type='ZegFormerHead', mode='fusion',
            region_classifier=dict(type='RegionCLIPClassifier', crop_size=16,
                                   clip=dict(type='OpenCLIPViT',
                                             model_cfg=VIT)),
            **MASKFORMER)),
    ovseg=dict(
        TWO_STAGE,
        decode_head=dict(
            type='OVSegHead',
            region_classifier=dict(type='RegionCLIPClassifier', crop_size=16,
                                   mask_prompt_depth=1,
                                   clip=dict(type='OpenCLIPViT',
                                             model_cfg=VIT)),
            **MASKFORMER)),
    openseg=dict(
        TWO_STAGE, type='OpenSegEncoderDecoder',
        decode_head=dict(type='OpenSegHead', **MASKFORMER)),
    san=dict(
        type='OpenVocabEncoderDecoder',
        backbone=dict(type='SANCLIPViT', model_cfg=VIT4, out_indices=(0, 1, 2),
                      encoder_resolution=0.5),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=VIT4,
                          templates='single'),
        decode_head=dict(
            type='SANHead', clip=dict(model_cfg=VIT4), start_block=3,
            side_adapter=dict(embed_dims=32, patch_size=8, num_queries=6,
                              num_layers=4, num_heads=2, pretrain_grid=80,
                              decoder=dict(embed_channels=16,
                                           mlp_channels=16)))),
    catseg=dict(
        type='OpenVocabEncoderDecoder',
        backbone=dict(type='CATSegCLIPViT', model_cfg=VIT, out_indices=(0, 1),
                      input_size=(32, 32), unfrozen=FINETUNE,
                      attn_parts=('q', 'v')),
        text_encoder=dict(type='CATSegTextEncoder', model_cfg=VIT,
                          templates=['a photo of a {}.', 'a {} in the scene'],
                          unfrozen=FINETUNE, attn_parts=('q', 'v')),
        decode_head=dict(
            type='CATSegHead', in_channels=(64, 64, 32), in_index=(0, 1, 2),
            channels=16, num_templates=2, text_guidance_channels=8,
            appearance_guidance_channels=8, decoder_channels=(16, 8),
            decoder_guidance_channels=(16, 8),
            decoder_guidance_proj_channels=(4, 4), num_layers=2, num_heads=2,
            window_size=2, pooling_size=(2, 2), pad_len=0)),
)


def state_dict_keys(name: str) -> list:
    """``[key, shape]`` of every state-dict entry of a tiny model, in order."""
    model = MODELS.build(copy.deepcopy(CONFIGS[name]))
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_state_dict_keys_are_unchanged(name):
    recorded = json.loads((KEYS_DIR / f'{name}.json').read_text())
    torch.manual_seed(0)
    keys = state_dict_keys(name)
    assert [k for k, _ in keys] == [k for k, _ in recorded]
    assert keys == recorded


def test_fcclip_and_zegformer_share_one_decoder_layer():
    """Both decoders are built from one layer class, in their own order."""
    from mmovss.models.utils import QueryDecoderLayer
    fcclip = MODELS.build(copy.deepcopy(CONFIGS['fcclip'])['decode_head'])
    zegformer = MODELS.build(dict(CONFIGS['zegformer']['decode_head'],
                                  mode='seg', region_classifier=None))
    fc_layer = fcclip.decoder.layers[0]
    zeg_layer = zegformer.mask_decoder.query_decoder.layers[0]
    assert type(fc_layer) is type(zeg_layer) is QueryDecoderLayer
    assert fc_layer.cross_first and not zeg_layer.cross_first


if __name__ == '__main__':  # writes the files (only when the keys must change)
    for name in CONFIGS:
        rows = [json.dumps(row) for row in state_dict_keys(name)]
        (KEYS_DIR / f'{name}.json').write_text(
            '[\n' + ',\n'.join(rows) + '\n]\n')
