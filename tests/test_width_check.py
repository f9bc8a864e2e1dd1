"""Decode-head widths that do not fit the towers are refused at build time.

A config that swaps the CLIP (``model.backbone.model_name='ViT-L-14'``, a
ConvNeXt CLIP) and forgets a head width (``in_channels``, ``embed_dim``) used
to build, then fail at the first forward with a bare torch shape error. The
segmentor now compares the widths the head declares with those the backbone
and text encoder state (:mod:`mmovss.models.utils.width_check`) and names the
keys, both widths and the fix.
"""
import copy

import pytest
import torch

from mmovss.models.utils.width_check import neck_output_widths, output_widths
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope

VIT = tiny_clip_cfg('vit')  # width 64, joint dimension 32
CONVNEXT = tiny_clip_cfg('convnext')  # convnext_atto stages (40, 80, 160, 320), joint 32


def _build(cfg):
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    return MODELS.build(copy.deepcopy(cfg))


def _model(decode_head, clip=VIT, backbone=None, **parts):
    backbone = backbone or dict(type='OpenCLIPViT', out_indices=(0, 1))
    return dict(
        type='OpenVocabEncoderDecoder', vocabulary=['cat', 'dog'],
        backbone=dict(backbone, model_name=None, model_cfg=clip),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_name=None, model_cfg=clip,
                          templates=['{}']),
        decode_head=decode_head, **parts)


LSEG = dict(type='LSegHead', in_channels=64, in_index=(0, 1, 2, 3), embed_dim=32, channels=16,
            post_process_channels=(8, 16, 32, 32), patch_size=8)
LSEG_BACKBONE = dict(type='OpenCLIPViT', out_indices=(0, 1, 1, 1))


def test_head_in_channels_of_another_clip_are_refused_at_build():
    """LSeg's ViT-B/16 width (768) on a tower of width 64: the keys, both
    widths and the value that fits are named."""
    with pytest.raises(ValueError) as error:
        _build(_model(dict(LSEG, in_channels=768), backbone=LSEG_BACKBONE))
    message = str(error.value)
    assert message.startswith('model.decode_head.in_channels=768 does not fit the towers: '
                              "model.backbone (OpenCLIPViT) outputs [64, 64, 64, 64, 32] "
                              'channels: outputs 0, 1, 2, 3 have 64, the head expects 768. ')
    assert 'set model.decode_head.in_channels=64 ' in message
    assert 'Swapping the CLIP' in message


def test_list_in_channels_get_a_list_fix():
    """CAT-Seg's (768, 768, 512) on the tiny ViT: every entry, the dense
    embeddings (output 2) and the class-embedding width included."""
    head = dict(type='CATSegHead', in_channels=(768, 768, 512), channels=32,
                text_guidance_channels=16, appearance_guidance_channels=16,
                decoder_guidance_channels=(16, 8), decoder_guidance_proj_channels=(8, 4),
                num_heads=2, window_size=2, pad_len=0)
    with pytest.raises(ValueError, match=r'in_channels=\[768, 768, 512\] does not fit.*'
                                         r'output 2 has 32, the head expects 512.*'
                                         r'embeds class names in 32 dimensions, the head '
                                         r'expects 512.*set model\.decode_head\.in_channels='
                                         r'\[64, 64, 32\]'):
        _build(_model(head))
    assert _build(_model(dict(head, in_channels=(64, 64, 32)))) is not None


def test_embed_dim_other_than_the_text_width_is_refused():
    with pytest.raises(ValueError, match=r'model\.decode_head\.embed_dim=512 does not fit the '
                                         r'towers: model\.text_encoder \(OpenCLIPTextEncoder\) '
                                         r'embeds class names in 32 dimensions, the head '
                                         r'expects 512.*set model\.decode_head\.embed_dim=32'):
        _build(_model(dict(LSEG, embed_dim=512), backbone=LSEG_BACKBONE))


def test_convnext_stage_widths_of_another_tower_are_refused():
    """FC-CLIP's ConvNeXt-L stage widths on a convnext_atto tower."""
    head = dict(type='FCCLIPHead', in_channels=[192, 384, 768, 1536], embed_dim=32, channels=32,
                pixel_decoder=dict(type='MSDeformAttnPixelDecoder', mask_channels=32,
                                   num_layers=1, num_heads=2, num_points=1, ffn_channels=32),
                num_queries=4, num_layers=1, num_heads=2, ffn_channels=32)
    backbone = dict(type='OpenCLIPConvNeXt')
    with pytest.raises(ValueError, match=r'in_channels=\[192, 384, 768, 1536\].*outputs \[40, '
                                         r'80, 160, 320, 32\] channels.*set model\.decode_head\.'
                                         r'in_channels=\[40, 80, 160, 320\]'):
        _build(_model(head, CONVNEXT, backbone))
    assert _build(_model(dict(head, in_channels=[40, 80, 160, 320]), CONVNEXT,
                         backbone)) is not None


def test_matching_widths_build_and_run():
    model = _build(_model(LSEG, backbone=LSEG_BACKBONE)).eval()
    with torch.no_grad():
        logits = model.encode_decode(torch.randn(1, 3, 32, 32), [dict(img_shape=(32, 32))])
    assert logits.shape == (1, 2, 32, 32)


TRAINING_FREE = dict(type='TrainingFreeHead', in_channels=32, background_index=None)


def _fcn(in_channels, in_index, **kwargs):
    """mmseg's FCNHead as an auxiliary head (a fixed-class mmseg head)."""
    return dict(type='FCNHead', in_channels=in_channels, in_index=in_index, channels=8,
                num_convs=1, concat_input=False, num_classes=3, **kwargs)


def test_auxiliary_head_widths_are_checked():
    """The tiny ViT outputs [64, 64, 32]; an auxiliary head left at ViT-B's
    768 is refused by its key, beside a decode head that fits."""
    with pytest.raises(ValueError) as error:
        _build(_model(TRAINING_FREE, auxiliary_head=_fcn(768, 0)))
    message = str(error.value)
    assert message.startswith('model.auxiliary_head.in_channels=768 does not fit the towers: '
                              'model.backbone (OpenCLIPViT) outputs [64, 64, 32] channels: '
                              'output 0 has 64, the head expects 768. ')
    assert 'set model.auxiliary_head.in_channels=64 ' in message
    assert 'decode_head' not in message


def test_each_auxiliary_head_of_a_list_is_named_by_its_position():
    with pytest.raises(ValueError) as error:
        _build(_model(TRAINING_FREE, auxiliary_head=[_fcn(64, 0), _fcn(512, 2)]))
    message = str(error.value)
    assert message.startswith('model.auxiliary_head[1].in_channels=512 does not fit')
    assert 'output 2 has 32, the head expects 512' in message
    assert 'set model.auxiliary_head[1].in_channels=32 ' in message
    assert 'auxiliary_head[0]' not in message


def test_decode_and_auxiliary_heads_are_refused_in_one_error():
    with pytest.raises(ValueError) as error:
        _build(_model(dict(LSEG, in_channels=768), backbone=LSEG_BACKBONE,
                      auxiliary_head=_fcn(1024, 0)))
    message = str(error.value)
    assert message.startswith('model.decode_head.in_channels=768 does not fit')
    assert 'model.auxiliary_head.in_channels=1024 does not fit' in message
    assert 'set model.auxiliary_head.in_channels=64 ' in message


def test_fitting_auxiliary_heads_build_and_run():
    """The widths the check compares are the widths the auxiliary heads get."""
    model = _build(_model(TRAINING_FREE, auxiliary_head=[_fcn(64, 1), _fcn(32, 2)])).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 32, 32))
        assert [head(feats).shape[1] for head in model.auxiliary_head] == [3, 3]


def test_resize_concat_heads_get_the_list_of_the_concatenated_widths():
    """``input_transform='resize_concat'`` keeps only the sum of
    ``in_channels``: the concatenation's width is checked, and the fix is
    the list of the widths of the inputs ``in_index`` selects."""
    concat = dict(input_transform='resize_concat', in_index=(0, 2))
    with pytest.raises(ValueError) as error:
        _build(_model(TRAINING_FREE, auxiliary_head=_fcn([768, 512], **concat)))
    message = str(error.value)
    assert message.startswith("model.auxiliary_head.in_channels summing to 1280 (input_transform="
                              "'resize_concat') does not fit the towers: model.backbone "
                              '(OpenCLIPViT) outputs [64, 64, 32] channels: outputs 0, 2 '
                              'concatenated have 96, the head expects 1280. ')
    assert 'set model.auxiliary_head.in_channels=[64, 32] ' in message


@pytest.mark.parametrize('in_channels', [[64, 32], [32, 64]])
def test_a_concatenation_of_the_right_width_builds_and_runs(in_channels):
    """Only the sum sizes a layer: entries in another order are no error."""
    model = _build(_model(TRAINING_FREE, auxiliary_head=_fcn(
        in_channels, input_transform='resize_concat', in_index=(0, 2)))).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 32, 32))
        assert model.auxiliary_head(feats).shape[1] == 3


def test_one_number_read_by_outputs_of_different_widths_names_in_index():
    """LSeg's ``in_channels`` is one number for its four inputs: where they
    differ in width (output 4 is the 32-d projection), no value of it fits,
    and the fix is an ``in_index`` of one width, not a list."""
    with pytest.raises(ValueError) as error:
        _build(_model(dict(LSEG, in_index=(0, 1, 2, 4)), backbone=LSEG_BACKBONE))
    message = str(error.value)
    assert message.startswith('model.decode_head.in_channels=64 does not fit the towers: '
                              'model.backbone (OpenCLIPViT) outputs [64, 64, 64, 64, 32] '
                              'channels: output 4 has 32, the head expects 64. ')
    assert ('set model.decode_head.in_index to outputs of one width (model.decode_head.'
            'in_channels is one number for outputs 0, 1, 2, 4, which have 64, 64, 64, 32) and '
            'model.decode_head.in_channels to it ') in message
    assert '[32, 64]' not in message


def test_a_list_entry_read_as_an_output_and_the_text_width_names_in_index():
    """CAT-Seg's ``in_channels[2]`` is both the dense embeddings' width and
    the class embeddings': reading a 64-wide output there fits neither value
    of it (the old fix, [64, 64, 64], would then refuse the text width)."""
    head = dict(type='CATSegHead', in_channels=(64, 64, 32), in_index=(0, 1, 0), channels=32,
                text_guidance_channels=16, appearance_guidance_channels=16,
                decoder_guidance_channels=(16, 8), decoder_guidance_proj_channels=(8, 4),
                num_heads=2, window_size=2, pad_len=0)
    with pytest.raises(ValueError) as error:
        _build(_model(head))
    message = str(error.value)
    assert 'output 0 has 64, the head expects 32' in message
    assert ('set model.decode_head.in_index so that model.decode_head.in_channels[2] reads an '
            'output of the class-embedding width, 32, instead of output 0, which has 64 '
            ) in message


def test_a_width_no_layer_uses_is_not_refused():
    """A training-free head's ``in_channels`` (ViT-L/14's joint dimension left
    in a config over a ViT-B one) names no layer's width: the model runs, so
    the build does not refuse it (never a false alarm)."""
    model = _build(_model(dict(type='TrainingFreeHead', in_channels=768,
                               background_index=None))).eval()
    with torch.no_grad():
        logits = model.encode_decode(torch.randn(1, 3, 32, 32), [dict(img_shape=(32, 32))])
    assert logits.shape == (1, 2, 32, 32)


def _tiny_siglip():
    """SigLIP's config with a 48-d joint space (the trunk's head maps its width to it)."""
    import open_clip
    cfg = copy.deepcopy(open_clip.get_model_config('ViT-B-16-SigLIP'))
    cfg['embed_dim'] = 48
    cfg['vision_cfg']['image_size'] = 32
    cfg['text_cfg'].update(width=32, heads=2, layers=1)
    return cfg


def _tiny_backbones():
    vfm = dict(model_name='vit_base_patch8_224.dino', pretrained=None,
               model_kwargs=dict(embed_dim=32, depth=1, num_heads=2, img_size=32))
    return {
        'OpenCLIPViT': dict(type='OpenCLIPViT', model_cfg=VIT, out_indices=(0, 1)),
        'TrainingFreeCLIPViT': dict(type='TrainingFreeCLIPViT', model_cfg=VIT,
                                    last_block_mode='naclip', out_indices=(0, )),
        'SANCLIPViT': dict(type='SANCLIPViT', model_cfg=VIT, out_indices=(0, )),
        'ProxyCLIPViT': dict(type='ProxyCLIPViT', model_cfg=VIT, vfm=vfm),
        'OpenCLIPConvNeXt': dict(type='OpenCLIPConvNeXt', model_cfg=CONVNEXT, out_indices=(1, 3)),
        'OpenCLIPConvNeXt-features': dict(type='OpenCLIPConvNeXt', model_cfg=CONVNEXT,
                                          dense_output='features'),
        'OpenCLIPTimmViT': dict(type='OpenCLIPTimmViT', model_cfg=_tiny_siglip(), out_indices=(0, ),
                                timm_model_kwargs=dict(embed_dim=64, depth=2, num_heads=2,
                                                       img_size=32)),
        'TimmViT': dict(type='TimmViT', model_name='vit_base_patch16_224', out_indices=(0, 1),
                        model_kwargs=dict(embed_dim=32, depth=2, num_heads=2, img_size=32)),
        'D2ResNet': dict(type='D2ResNet', depth=18, out_indices=(1, 2, 3)),
        'ResNetV1c': dict(type='ResNetV1c', depth=18, out_indices=(0, 3)),
        'SwinTransformer': dict(type='SwinTransformer', embed_dims=16, depths=(1, 1),
                                num_heads=(1, 2), window_size=2, out_indices=(0, 1)),
    }


@pytest.mark.parametrize('name', sorted(_tiny_backbones()))
def test_stated_widths_are_the_forward_widths(name):
    """What a tower states without a forward is what its forward gives: the
    check can never raise for a model that runs."""
    torch.manual_seed(0)
    backbone = _build(_tiny_backbones()[name])
    backbone.eval()  # (mmseg's ResNet.train returns None)
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 32, 32))
    channels = [(o[0] if isinstance(o, (list, tuple)) else o).shape[1] for o in outs]
    assert list(output_widths(backbone)) == channels


def test_a_tower_that_states_no_widths_is_not_checked():
    """mmseg's ViT states none: its head's widths are left to the forward."""
    init_default_scope('mmseg')
    from mmseg.registry import MODELS
    assert output_widths(MODELS.build(dict(type='VisionTransformer', img_size=32, patch_size=8,
                                           embed_dims=32, num_layers=1, num_heads=2))) is None


_QUERY_HEAD = dict(in_channels=[32, 32, 32, 32], embed_dim=24, channels=32, num_queries=2,
                   num_layers=1, num_heads=2, ffn_channels=32)
_TEXT_WIDTH_HEADS = {
    'FCCLIPHead': dict(_QUERY_HEAD, pixel_decoder=dict(
        type='MSDeformAttnPixelDecoder', mask_channels=32, num_layers=1, num_heads=2,
        num_points=1, ffn_channels=32)),
    'ZegFormerHead': dict(_QUERY_HEAD, mask_channels=32, mode='seg'),
    'OpenSegHead': dict(_QUERY_HEAD, mask_channels=32),
    'LSegHead': dict(LSEG, embed_dim=24),
}


@pytest.mark.parametrize('name', sorted(_TEXT_WIDTH_HEADS))
def test_heads_declare_embed_dim_as_the_text_width(name):
    """The heads whose layers are sized by ``embed_dim`` declare it as the
    class-embedding width (``text_width_key``), after their inputs."""
    from mmovss.models.utils.width_check import TEXT, DeclaredWidth
    head = _build(dict(_TEXT_WIDTH_HEADS[name], type=name))
    declared = head.declared_widths()
    assert declared[-1] == DeclaredWidth('embed_dim', None, TEXT, 24)
    assert [d.source for d in declared[:-1]] == [0, 1, 2, 3]


PIXEL_DECODER = dict(type='MSDeformAttnPixelDecoder', in_channels=[8, 16, 32, 64], channels=32,
                     mask_channels=16, num_layers=1, num_heads=2, num_points=1, ffn_channels=32)
SMALL_RESNET = dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=8,
                    norm_cfg=dict(type='BN'))  # outputs (8, 16, 32, 64) channels


def test_stated_neck_widths_are_the_forward_widths():
    """The pixel decoder states the mask features' width, then that of each
    of the three refined maps (its second output is their list)."""
    torch.manual_seed(0)
    neck = _build(PIXEL_DECODER).eval()
    feats = [torch.randn(1, c, s, s) for c, s in zip((8, 16, 32, 64), (16, 8, 4, 2))]
    with torch.no_grad():
        mask_features, refined = neck(feats)
    assert neck_output_widths(neck, (8, 16, 32, 64)) == (mask_features.shape[1], 32) == (16, 32)
    assert [m.shape[1] for m in refined] == [32, 32, 32]


def _neck_model(**parts):
    """ResNet -> pixel decoder (32-d mask features) -> a cosine head on them."""
    model = _model(dict(type='CLIPCosineHead', in_channels=32, in_index=0), **parts)
    model.update(backbone=SMALL_RESNET, neck=dict(PIXEL_DECODER, mask_channels=32))
    return model


def test_heads_behind_a_neck_are_checked_against_the_neck_outputs():
    with pytest.raises(ValueError) as error:
        _build(_neck_model(auxiliary_head=_fcn(64, 0)))
    message = str(error.value)
    assert message.startswith('model.auxiliary_head.in_channels=64 does not fit the towers: '
                              'model.neck (MSDeformAttnPixelDecoder) outputs [32, 32] channels: '
                              'output 0 has 32, the head expects 64. ')
    assert 'set model.auxiliary_head.in_channels=32 ' in message


def test_heads_that_fit_the_neck_build_and_run():
    model = _build(_neck_model(auxiliary_head=_fcn(32, 0))).eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 64, 64))
        assert model.auxiliary_head(feats).shape[1] == 3
        logits = model.encode_decode(torch.randn(1, 3, 64, 64), [dict(img_shape=(64, 64))])
    assert logits.shape == (1, 2, 64, 64)
