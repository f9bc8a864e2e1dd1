"""CAT-Seg with tiny random CLIPs: training step, Q/V fine-tuning, any
vocabulary size, class-permutation equivariance, chunked = unchunked, per-
template text embeddings, configs and backbone swap by inheritance."""
import copy

import pytest
import torch
import torch.nn.functional as F

from mmovss.models.text_encoders import ClassEmbeddings
from mmovss.protocols import apply_benchmark
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.vocab import Vocabulary

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CFG = tiny_clip_cfg('vit')  # width 64, joint dim 32, patch 8, 2 blocks
FINETUNE = ('transformer.resblocks.*.attn.in_proj_weight', )
HEAD = dict(
    type='CATSegHead', in_channels=(64, 64, 32), in_index=(0, 1, 2),
    channels=16, num_templates=2, text_guidance_channels=8,
    appearance_guidance_channels=8, decoder_channels=(16, 8),
    decoder_guidance_channels=(16, 8), decoder_guidance_proj_channels=(4, 4),
    num_layers=2, num_heads=2, window_size=2, pooling_size=(2, 2),
    test_pooling_size=(1, 1), pad_len=0,
    loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0))
MODEL = dict(
    type='OpenVocabEncoderDecoder',
    backbone=dict(type='CATSegCLIPViT', model_cfg=CFG, out_indices=(0, 1),
                  input_size=(32, 32), unfrozen=FINETUNE, attn_parts=('q', 'v')),
    text_encoder=dict(type='CATSegTextEncoder', model_cfg=CFG,
                      templates=['a photo of a {}.', 'a {} in the scene'],
                      unfrozen=FINETUNE, attn_parts=('q', 'v')),
    decode_head=HEAD,
    test_cfg=dict(mode='whole'))


def batch(num_classes, size=(40, 40), n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size))
        label = torch.randint(0, num_classes, (1, *size), generator=gen)
        label[:, :3] = 255  # some ignored pixels
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return torch.randn(n, 3, *size, generator=gen), samples


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(MODEL))
    model.init_weights()
    return model


def test_training_step_fine_tunes_only_query_and_value(model):
    model.train()
    model.set_vocabulary(['cat', 'dog', 'sky'])
    x, samples = batch(3)
    model.zero_grad()
    losses = model.loss(x, samples)
    assert torch.isfinite(losses['decode.loss_ce'])
    losses['decode.loss_ce'].backward()
    head_grads = [p.grad for p in model.decode_head.parameters() if p.requires_grad]
    assert head_grads and all(g is not None for g in head_grads)
    assert any(g.abs().sum() > 0 for g in head_grads)
    for tower in (model.backbone.visual, model.text_encoder.tower):
        trainable = [n for n, p in tower.named_parameters() if p.requires_grad]
        assert trainable and all(n.endswith('attn.in_proj_weight') for n in trainable)
        for block in tower.transformer.resblocks:
            grad = block.attn.in_proj_weight.grad
            width = grad.shape[1]
            q, k, v = grad[:width], grad[width:2 * width], grad[2 * width:]
            assert q.abs().sum() > 0 and v.abs().sum() > 0
            assert torch.count_nonzero(k) == 0
    model.zero_grad()


def test_inference_with_a_vocabulary_of_another_size(model):
    model.eval()
    x, _ = batch(3, n=1)
    with torch.no_grad():
        model.set_vocabulary(['cat', 'dog', 'sky', 'road', 'tree, bush', 'car', 'wall'])
        out = model.predict(x)
    # synonyms ('tree, bush') are reduced: one channel per class
    assert out[0].seg_logits.data.shape == (7, 40, 40)
    assert out[0].pred_sem_seg.shape == (40, 40)


def head_inputs(num_names, seed=1, batch_size=2, templates=2):
    gen = torch.Generator().manual_seed(seed)
    feats = (torch.randn(batch_size, 64, 4, 4, generator=gen),
             torch.randn(batch_size, 64, 4, 4, generator=gen),
             torch.randn(batch_size, 32, 4, 4, generator=gen))
    template = F.normalize(torch.randn(num_names, templates, 32, generator=gen), dim=-1)
    return feats, template


def embeddings(template, names=None):
    from mmovss.models.text_encoders.catseg_text_encoder import TemplateClassEmbeddings
    names = names or [f'class{i}' for i in range(template.shape[0])]
    vocab = Vocabulary.build(names)
    return TemplateClassEmbeddings(
        F.normalize(template.mean(1), dim=-1), torch.arange(len(names)), vocab,
        template_embeds=template)


@pytest.mark.parametrize('train_mode,pad_len', [(False, 0), (True, 16)])
def test_class_permutation_permutes_output_channels(train_mode, pad_len):
    torch.manual_seed(0)
    head = MODELS.build(dict(copy.deepcopy(HEAD), pad_len=pad_len))
    head.init_weights()
    with torch.no_grad():  # non-zero padding tokens make the test sharper
        for layer in head.class_layers:
            if layer.padding_token is not None:
                layer.padding_token.normal_()
                layer.padding_guidance.normal_()
    head.train(train_mode)
    feats, template = head_inputs(9)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = head(feats, embeddings(template))
        out_perm = head(feats, embeddings(template[perm]))
    assert out.shape == (2, 9, 16, 16)
    torch.testing.assert_close(out_perm, out[:, perm], atol=1e-5, rtol=1e-4)
    # the classes do interact (class aggregation): changing one class's text
    # changes the logits of the others
    other = template.clone()
    other[0] = F.normalize(torch.randn(2, 32), dim=-1)
    with torch.no_grad():
        changed = head(feats, embeddings(other))
    assert not torch.allclose(changed[:, 1:], out[:, 1:], atol=1e-4)


@pytest.mark.parametrize('pad_len', [0, 8])
def test_chunked_classes_give_the_unchunked_result(pad_len):
    torch.manual_seed(0)
    head = MODELS.build(dict(copy.deepcopy(HEAD), pad_len=pad_len)).eval()
    head.init_weights()
    feats, template = head_inputs(23)
    class_embeds = embeddings(template)
    with torch.no_grad():
        head.class_chunk_size = None
        whole = head(feats, class_embeds)
        head.class_chunk_size = 5
        chunked = head(feats, class_embeds)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-4)
    if pad_len:
        # only pad_len names are aggregated; the others are pushed to -100
        dropped = (whole == -100.0).all(dim=-1).all(dim=-1)
        assert dropped.sum(dim=1).tolist() == [23 - pad_len] * 2


def test_text_encoder_returns_every_template(model):
    encoder = model.text_encoder.eval()
    names = ['cat', 'traffic light']
    with torch.no_grad():
        embeds = encoder(names)
        expected = encoder.encode_prompts(
            [t.format(n) for n in names for t in encoder.templates]).view(2, 2, -1)
    assert embeds.template_embeds.shape == (2, 2, 32)
    torch.testing.assert_close(embeds.template_embeds, expected)
    torch.testing.assert_close(embeds.embeds, F.normalize(expected.mean(1), dim=-1))
    assert encoder.cache_key(names)['per_template'] is True


def test_bad_inputs_are_named():
    head = MODELS.build(copy.deepcopy(HEAD))
    feats, template = head_inputs(3, templates=1)
    with pytest.raises(ValueError, match='num_templates'):
        head(feats, embeddings(template))
    feats, template = head_inputs(3)
    plain = ClassEmbeddings(template[:, 0], torch.arange(3), Vocabulary.build(['a', 'b', 'c']))
    head_one = MODELS.build(dict(copy.deepcopy(HEAD), num_templates=1))
    assert head_one(feats, plain).shape == (2, 3, 16, 16)  # P = 1 from plain embeddings
    with pytest.raises(ValueError, match='in_channels'):
        MODELS.build(dict(copy.deepcopy(HEAD), in_channels=(64, 32)))
    with pytest.raises(ValueError, match='attention parts'):
        MODELS.build(dict(copy.deepcopy(MODEL['backbone']), attn_parts=('q', 'x')))


def test_configs_swap_the_backbone_by_inheritance(repo_root):
    base = Config.fromfile(repo_root / 'configs/catseg/catseg_vit-b16_80k_coco-stuff171-384x384.py')
    large = Config.fromfile(
        repo_root / 'configs/catseg/catseg_vit-l14_80k_coco-stuff171-384x384.py')
    model_l = Config.fromfile(repo_root / 'configs/_base_/models/catseg_vit-l14.py')
    assert base.model.backbone.model_name == base.model.text_encoder.model_name == 'ViT-B-16'
    assert large.model.backbone.model_name == large.model.text_encoder.model_name == 'ViT-L-14-336'
    assert large.model.decode_head.in_channels == (1024, 1024, 768)
    assert large.model.backbone.out_indices == (7, 15)
    # the L training config and the L model base describe the same model
    assert large.model.to_dict() == model_l.model.to_dict()
    # everything else is inherited unchanged
    for key in ('optim_wrapper', 'param_scheduler', 'train_dataloader', 'train_cfg'):
        assert large[key] == base[key]
    changed = {k for k in base.model.decode_head
               if base.model.decode_head[k] != large.model.decode_head[k]}
    assert changed == {'in_channels'}
    assert base.optim_wrapper.paramwise_cfg.custom_keys['backbone'].lr_mult == 0.01


@pytest.mark.parametrize('eval_data', ['ade20k_847', 'ade20k_150', 'pascal_context_459',
                                       'pascal_context_59', 'pascal_context_60', 'voc20',
                                       'voc21', 'coco_stuff171', 'coco_object', 'cityscapes'])
def test_evaluation_configs_inherit_model_and_benchmark(repo_root, eval_data):
    for backbone in ('vit-b16', 'vit-l14'):
        # the switch that replaced the per-benchmark files (tools/test.py --benchmark)
        cfg = apply_benchmark(Config.fromfile(
            repo_root / f'configs/catseg/catseg_{backbone}_80k_coco-stuff171-384x384.py'),
            eval_data)
        dataset = Config.fromfile(repo_root / f'configs/_base_/datasets/{eval_data}.py')
        model = Config.fromfile(repo_root / f'configs/_base_/models/catseg_{backbone}.py')
        assert cfg.train_dataloader is None
        assert cfg.model == model.model
        assert cfg.test_dataloader.dataset.type == dataset.test_dataloader.dataset.type


def test_ovshapes_config_builds_and_segments_all_classes(repo_root):
    cfg = Config.fromfile(repo_root / 'configs/ovshapes/catseg_tiny-clip_1k_ovshapes-seen.py')
    cfg.model.backbone.pretrained = cfg.model.text_encoder.pretrained = None  # no checkpoint
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    model.set_vocabulary(cfg.seen_classes + cfg.unseen_classes)
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, 64, 64))
    assert out[0].seg_logits.data.shape == (40, 64, 64)
    assert model.decode_head.num_templates == len(cfg.templates)
