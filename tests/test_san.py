"""SAN: parity with mmseg 1.2.2's SAN on a small random model, the converter
both ways, forward/loss/backward, vocabulary swap, and input checks."""
import copy
import math
from pathlib import Path

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.testing.tools import load_tool

from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

ROOT = Path(__file__).resolve().parents[1]
# 4-block ViT (width 64, 2 heads, patch 8): 3 shallow blocks + 1 deep.
CLIP = tiny_clip_cfg('vit', vision_cfg=dict(layers=4), quick_gelu=True)
NAMES = ['cat', 'dog', 'sky', 'road']
TEMPLATES = ['a photo of a {}.', 'there is a {} in the scene.']


def load_converter():
    return load_tool('model_converters/san_mmseg_to_mmovss.py')


def ours_cfg(vocabulary=NAMES, **head):
    head_cfg = dict(
        type='SANHead', clip=dict(model_cfg=CLIP), start_block=3,
        side_adapter=dict(embed_dims=32, patch_size=8, num_queries=6,
                          num_layers=4, num_heads=2,
                          fusion_index=(0, 1, 2, 3), pretrain_grid=80,
                          decoder=dict(embed_channels=16, mlp_channels=16)),
        deep_supervision_idxs=(3, ),
        criterion=dict(type='MaskClassificationLoss', num_points=64))
    head_cfg.update(head)
    return dict(
        type='OpenVocabEncoderDecoder',
        backbone=dict(type='SANCLIPViT', model_cfg=CLIP,
                      out_indices=(0, 1, 2), encoder_resolution=0.5),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP,
                          templates=TEMPLATES),
        decode_head=head_cfg, vocabulary=vocabulary,
        test_cfg=dict(mode='whole'))


def mmseg_cfg():
    """mmseg's SAN with the same (tiny) sizes as :func:`ours_cfg`."""
    return ConfigDict(
        type='MultimodalEncoderDecoder', asymetric_input=True,
        encoder_resolution=0.5,
        image_encoder=dict(
            type='VisionTransformer', img_size=(32, 32), patch_size=8,
            patch_pad=0, in_channels=3, embed_dims=64, num_layers=3,
            num_heads=2, mlp_ratio=4, out_origin=True, out_indices=(0, 1, 2),
            qkv_bias=True, with_cls_token=True, output_cls_token=True,
            patch_bias=False, pre_norm=True,
            norm_cfg=dict(type='LN', eps=1e-5),
            act_cfg=dict(type='QuickGELU'), norm_eval=False,
            interpolate_mode='bicubic', frozen_exclude=['pos_embed']),
        text_encoder=dict(
            type='CLIPTextEncoder', vocabulary=NAMES, templates=TEMPLATES,
            embed_dims=32, num_layers=2, num_heads=2, mlp_ratio=4,
            output_dims=32, cache_feature=True, cat_bg=True,
            norm_cfg=dict(type='LN', eps=1e-5)),
        decode_head=dict(
            type='SideAdapterCLIPHead', num_classes=len(NAMES),
            deep_supervision_idxs=[3],
            san_cfg=dict(
                in_channels=3, clip_channels=64, embed_dims=32, patch_size=8,
                patch_bias=True, num_queries=6,
                cfg_encoder=dict(num_encode_layer=4, num_heads=2,
                                 mlp_ratio=4),
                fusion_index=[0, 1, 2, 3],
                cfg_decoder=dict(num_heads=2, num_layers=1,
                                 embed_channels=16, mlp_channels=16,
                                 num_mlp=3, rescale=True),
                norm_cfg=dict(type='LN', eps=1e-6)),
            maskgen_cfg=dict(
                sos_token_format='cls_token', sos_token_num=6,
                cross_attn=False, num_layers=1, embed_dims=64, num_heads=2,
                mlp_ratio=4, qkv_bias=True, out_dims=32, final_norm=True,
                act_cfg=dict(type='QuickGELU'),
                norm_cfg=dict(type='LN', eps=1e-5), frozen_exclude=[]),
            align_corners=False, train_cfg=None,
            loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        test_cfg=dict(mode='whole'))


def randomise(module, seed):
    """Random values in every parameter (so no zero-init hides a bug)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(1)  # the init draws from the global generator: fixed, so the
    # comparison below is never degenerate by chance (an unseeded run once gave a
    # logit std of 9.5e-05)
    ours = MODELS.build(ours_cfg()).eval()
    randomise(ours.decode_head.side_adapter, 1)
    with torch.no_grad():
        ours.decode_head.void_embed.normal_()
        ours.backbone.visual.positional_embedding.add_(0.1)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):  # mmcv FFN finds
        theirs = MODELS.build(mmseg_cfg()).eval()  # mmseg's QuickGELU
    return ours, theirs


def test_converter_keys_cover_mmseg_san(models):
    conv = load_converter()
    ours, theirs = models
    theirs_keys = set(theirs.state_dict())
    converted, _ = conv.mmseg_to_mmovss(theirs.state_dict())
    assert set(converted) == set(ours.state_dict())
    back = conv.mmovss_to_mmseg(ours.state_dict())
    assert set(back) == theirs_keys


def test_logits_equal_mmseg_san(models):
    """Same weights (ours -> mmseg by the converter): same logits."""
    conv = load_converter()
    ours, theirs = models
    scale = math.log(float(ours.text_encoder.logit_scale))
    result = theirs.load_state_dict(
        conv.mmovss_to_mmseg(ours.state_dict(), scale), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 48)
    metas = [dict(img_shape=(64, 48), pad_shape=(64, 48),
                  ori_shape=(64, 48))] * 2
    with torch.no_grad():
        mine = ours.encode_decode(x, metas)
        ref = theirs.encode_decode(x, copy.deepcopy(metas))
    assert mine.shape == ref.shape == (2, len(NAMES), 64, 48)
    assert ref.std() > 1e-3  # not a degenerate comparison
    torch.testing.assert_close(mine, ref, atol=1e-4, rtol=1e-4)


def test_converter_round_trip(models, tmp_path):
    conv = load_converter()
    _, theirs = models
    state = theirs.state_dict()
    ours_state, scale = conv.mmseg_to_mmovss(state)
    back = conv.mmovss_to_mmseg(ours_state, scale)
    assert set(back) == set(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key
    # the CLI writes a loadable checkpoint (meta keeps the temperature); the
    # way back through the tool's main in this process
    src, mid, dst = (tmp_path / n for n in ('a.pth', 'b.pth', 'c.pth'))
    torch.save(dict(state_dict=state), src)
    import subprocess
    import sys
    script = ROOT / 'tools/model_converters/san_mmseg_to_mmovss.py'
    subprocess.run([sys.executable, str(script), str(src), str(mid), '--to', 'mmovss'],
                   check=True, capture_output=True)
    conv.main([str(mid), str(dst), '--to', 'mmseg'])
    final = torch.load(dst, weights_only=False)['state_dict']
    for key, value in state.items():
        assert torch.equal(final[key], value), key


def sample(size, num_classes):
    s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size,
                                    pad_shape=size))
    label = torch.randint(0, num_classes, (1, ) + size)
    label[:, :4] = 255  # some ignored pixels
    s.gt_sem_seg = PixelData(data=label)
    return s


def test_loss_backward_and_frozen_clip():
    model = MODELS.build(ours_cfg())
    model.train()
    x = torch.randn(2, 3, 48, 64)
    losses = model.loss(x, [sample((48, 64), 4), sample((48, 64), 4)])
    assert set(losses) == {f'decode.{p}loss_{n}' for p in ('', 'd3.')
                           for n in ('cls', 'mask', 'dice')}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    head = model.decode_head
    assert head.void_embed.grad is not None
    assert head.side_adapter.query_embed.grad.abs().sum() > 0
    # CLIP weights stay frozen, except SAN's trained position embedding
    assert all(not p.requires_grad for p in head.recognizer.parameters())
    trainable = [n for n, p in model.backbone.named_parameters()
                 if p.requires_grad]
    assert trainable == ['visual.positional_embedding']
    assert model.backbone.visual.positional_embedding.grad is not None


def test_vocabulary_swap_at_test_time():
    model = MODELS.build(ours_cfg()).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        three = model._forward(x)
        model.set_vocabulary(NAMES + ['tree', 'car'])
        five = model._forward(x)
        preds = model.predict(x)
    assert three.shape == (1, 4, 32, 32) and five.shape == (1, 6, 32, 32)
    assert preds[0].pred_sem_seg.data.max() < 6


def test_bad_inputs_fail_clearly():
    model = MODELS.build(ours_cfg())
    with pytest.raises(ValueError, match='SANCLIPViT expects'):
        model.backbone(torch.randn(1, 1, 32, 32))
    feats = model.backbone(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='CLIP maps'):
        model.decode_head(feats[1:], model.class_embeddings())
    with pytest.raises(ValueError, match='side_adapter.clip_channels'):
        MODELS.build(ours_cfg(side_adapter=dict(clip_channels=64))
                     ['decode_head'])
