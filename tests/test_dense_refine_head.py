"""DenseEmbeddingRefineHead: starts as zero-shot dense CLIP, trains, keeps its scale."""
import copy

import torch

from mmovss.testing.clip import tiny_clip_cfg

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CFG = tiny_clip_cfg('vit')


def _model(head):
    return MODELS.build(dict(
        type='OpenVocabEncoderDecoder',
        backbone=dict(type='OpenCLIPViT', model_cfg=CFG, out_indices=(0, 1)),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CFG, templates='single'),
        decode_head=head, vocabulary=['cat', 'dog, puppy', 'sky'],
        test_cfg=dict(mode='whole')))


REFINE = dict(type='DenseEmbeddingRefineHead', in_channels=[64, 64, 32], in_index=[0, 1, 2],
              channels=16, num_convs=1, upsample=1,
              loss_decode=dict(type='CrossEntropyLoss', avg_non_ignore=True))


def test_untrained_head_equals_cosine_head():
    refine = _model(copy.deepcopy(REFINE))
    refine.init_weights()
    cosine = _model(dict(type='CLIPCosineHead', in_channels=32, in_index=-1))
    cosine.backbone.load_state_dict(refine.backbone.state_dict())
    cosine.text_encoder.load_state_dict(refine.text_encoder.state_dict())
    x = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        torch.testing.assert_close(refine._forward(x), cosine._forward(x))


def test_training_step_changes_only_the_head_and_scale_survives_reload():
    torch.manual_seed(0)
    model = _model(copy.deepcopy(REFINE))
    model.init_weights()
    model.train()
    x = torch.randn(2, 3, 32, 32)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(32, 32), ori_shape=(32, 32), pad_shape=(32, 32)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 32, 32)))
        samples.append(s)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    losses = model.loss(x, samples)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith('backbone.'))
    assert not torch.equal(before['decode_head.to_residual.weight'],
                           after['decode_head.to_residual.weight'])
    trained_scale = float(model.decode_head.log_logit_scale)
    reloaded = _model(copy.deepcopy(REFINE))
    reloaded.load_state_dict(model.state_dict())
    reloaded.eval()
    with torch.no_grad():
        reloaded._forward(x)  # must not reset the scale to CLIP's
    assert float(reloaded.decode_head.log_logit_scale) == trained_scale
