"""LSeg with tiny random CLIPs: training step through the trainable image
encoder, full-resolution output, any vocabulary size, spatial
regularisation, configs and backbone swap by inheritance."""
import copy

import pytest
import torch

from mmovss.models.decode_heads.lseg_head import LSegSpatialRegularization
from mmovss.protocols import apply_benchmark
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CFG = tiny_clip_cfg('vit')  # width 64, joint dim 32, patch 8, 2 blocks
MODEL = dict(
    type='OpenVocabEncoderDecoder',
    backbone=dict(type='OpenCLIPViT', model_cfg=CFG, out_indices=(0, 0, 1, 1),
                  frozen=True, unfrozen=('transformer.*', )),
    text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG, templates=['{}']),
    decode_head=dict(
        type='LSegHead', in_channels=64, embed_dim=32, channels=16,
        post_process_channels=(8, 16, 32, 32), patch_size=8, reg_block='bottleneck',
        reg_depth=2, align_corners=True,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    test_cfg=dict(mode='whole'))


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(MODEL))
    model.init_weights()
    return model


def test_training_step_reaches_image_encoder_and_temperature(model):
    model.train()
    model.set_vocabulary(['cat', 'dog', 'sky'])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 48, 48, generator=gen)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(48, 48), ori_shape=(48, 48)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 48, 48), generator=gen))
        samples.append(s)
    with torch.no_grad():
        logits = model._forward(x)
    # DPT ends at 8x the patch grid (H/2 for patch 16; here patch 8: 6 -> 48),
    # then LSeg's 2x upsampling
    assert logits.shape == (2, 3, 96, 96)
    model.zero_grad()
    losses = model.loss(x, samples)
    losses['decode.loss_ce'].backward()
    head = model.decode_head
    assert head.log_logit_scale.grad is not None and head.log_logit_scale.grad != 0
    assert head.regularization.kernel.weight.grad.abs().sum() > 0
    block = model.backbone.visual.transformer.resblocks[0]
    assert block.attn.in_proj_weight.grad.abs().sum() > 0
    assert model.backbone.visual.proj.grad is None  # frozen: not used by LSeg
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    model.zero_grad()


def test_inference_with_a_vocabulary_of_another_size(model):
    model.eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        model.set_vocabulary(['cat', 'dog', 'sky', 'road', 'tree, bush'])
        five = model.predict(x)
        model.set_vocabulary(['cat', 'dog'])
        two = model.predict(x)
    assert five[0].seg_logits.data.shape == (5, 40, 56)
    assert two[0].seg_logits.data.shape == (2, 40, 56)


def test_bottleneck_regularisation_adds_the_class_maximum():
    reg = LSegSpatialRegularization('bottleneck', depth=1)
    with torch.no_grad():
        reg.kernel.weight.zero_()
        reg.kernel.bias.fill_(0.5)
    logits = torch.randn(2, 7, 5, 6)
    out = reg(logits)
    expected = (logits.amax(dim=1, keepdim=True) + 0.5).expand_as(logits)
    torch.testing.assert_close(out, expected)
    depthwise = LSegSpatialRegularization('depthwise', depth=1)
    with torch.no_grad():  # identity kernel: the map is unchanged
        depthwise.kernel.weight.zero_()
        depthwise.kernel.weight[0, 0, 1, 1] = 1.0
        depthwise.kernel.bias.zero_()
    torch.testing.assert_close(depthwise(logits), logits)
    # one kernel for all classes: any number of classes works
    assert depthwise(torch.randn(1, 31, 4, 4)).shape == (1, 31, 4, 4)
    with pytest.raises(ValueError, match='depth'):
        LSegSpatialRegularization('bottleneck', depth=0)


def test_regularisation_in_map_chunks_equals_one_call_with_gradients():
    """Many classes: the kernel runs on chunks of maps (bounded im2col)."""
    torch.manual_seed(0)
    reg = LSegSpatialRegularization('bottleneck', depth=2)
    logits = torch.randn(2, 50, 6, 7, requires_grad=True)
    whole = reg(logits)
    (g_whole, ) = torch.autograd.grad(whole.square().sum(), logits)
    reg.map_chunk = 16  # 100 maps in 7 chunks
    chunked = reg(logits)
    (g_chunked, ) = torch.autograd.grad(chunked.square().sum(), logits)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_chunked, g_whole, rtol=0, atol=1e-5)
    kernel_grad = torch.autograd.grad(reg(logits).sum(), reg.kernel.weight)[0]
    assert kernel_grad.abs().sum() > 0


def test_bad_settings_are_named():
    head = copy.deepcopy(MODEL['decode_head'])
    with pytest.raises(ValueError, match='readout'):
        MODELS.build(dict(head, readout_type='concat'))
    with pytest.raises(ValueError, match='4 ViT layers'):
        MODELS.build(dict(head, in_index=(0, 1, 2)))
    with pytest.raises(ValueError, match='spatial regularisation'):
        MODELS.build(dict(head, reg_block='conv'))


def test_configs_swap_the_backbone_by_inheritance(repo_root):
    base = Config.fromfile(repo_root / 'configs/lseg/lseg_vit-b16_80k_coco-stuff171-480x480.py')
    large = Config.fromfile(repo_root / 'configs/lseg/lseg_vit-l14_80k_coco-stuff171-480x480.py')
    model_l = Config.fromfile(repo_root / 'configs/_base_/models/lseg_vit-l14.py')
    assert large.model.backbone.model_name == large.model.text_encoder.model_name == 'ViT-L-14'
    assert large.model.to_dict() == model_l.model.to_dict()
    for key in ('optim_wrapper', 'param_scheduler', 'train_dataloader', 'train_cfg'):
        assert large[key] == base[key]
    changed = {k for k in base.model.decode_head
               if base.model.decode_head[k] != large.model.decode_head[k]}
    assert changed == {'in_channels', 'embed_dim', 'post_process_channels', 'patch_size'}
    assert base.optim_wrapper.optimizer.type == 'SGD'
    assert base.optim_wrapper.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.1
    for eval_data in ('ade20k_847', 'ade20k_150', 'pascal_context_459', 'pascal_context_59',
                      'pascal_context_60', 'voc20', 'voc21', 'coco_stuff171', 'coco_object',
                      'cityscapes'):
        for backbone, model_cfg in (('vit-b16', None), ('vit-l14', model_l)):
            # the switch that replaced the per-benchmark files (--benchmark)
            cfg = apply_benchmark(Config.fromfile(
                repo_root / f'configs/lseg/lseg_{backbone}_80k_coco-stuff171-480x480.py'),
                eval_data)
            dataset = Config.fromfile(repo_root / f'configs/_base_/datasets/{eval_data}.py')
            assert cfg.train_dataloader is None
            assert cfg.model == (model_cfg.model if model_cfg else
                                 Config.fromfile(repo_root /
                                                 'configs/_base_/models/lseg_vit-b16.py').model)
            assert cfg.test_dataloader.dataset.type == dataset.test_dataloader.dataset.type


def test_ovshapes_config_builds_and_segments_all_classes(repo_root):
    cfg = Config.fromfile(repo_root / 'configs/ovshapes/lseg_tiny-clip_1k_ovshapes-seen.py')
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = None  # no checkpoint
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    model.set_vocabulary(cfg.seen_classes + cfg.unseen_classes)
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 64))
    assert out[0].seg_logits.data.shape == (40, 64, 64)


def test_slide_windows_keep_half_resolution_logits_and_equal_mmseg():
    """Large vocabularies: windows hold LSeg's logits before its 2x upsampling
    (4x fewer values), and the result equals mmseg's dense slide average."""
    cfg = copy.deepcopy(MODEL)  # patch 16 as ViT-B/16: logits at half size
    cfg['backbone']['model_cfg'] = cfg['text_encoder']['model_cfg'] = \
        tiny_clip_cfg('vit', vision_cfg=dict(patch_size=16))
    cfg['decode_head']['patch_size'] = 16
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    model.set_vocabulary([f'thing {i}' for i in range(30)])
    x = torch.randn(1, 3, 40, 56)
    metas = [dict(ori_shape=(40, 56), img_shape=(40, 56), pad_shape=(40, 56))]
    model.test_cfg = dict(mode='slide', crop_size=(32, 32), stride=(16, 16))
    with torch.no_grad():
        lazy = model.chunked_inference(x, metas)
        dense = model.slide_inference(x, metas)
        # a crop whose size is no multiple of the patch: forward's logits
        feats = model.extract_feat(x[..., :30, :30])
        odd = model.decode_head.predict_low_res(
            feats, model.class_embeddings(),
            [dict(img_shape=(30, 30), pad_shape=(30, 30))], model.test_cfg)
        full = model.decode_head.forward(feats, model.class_embeddings())
    windows = lazy.windows[0]
    assert len(windows) == 6  # 2 x 3 windows
    assert all(logits.shape == (30, 16, 16) for _, logits in windows)
    assert odd.shape[-2:] == (32, 32) and torch.equal(odd, full)
    torch.testing.assert_close(lazy.dense(), dense, rtol=0, atol=1e-5)
    assert torch.equal(lazy.dense().argmax(1), dense.argmax(1))
