"""OpenSeg: the class-agnostic Dice loss and the region-word grounding loss
against hand-computed values; forward/loss/backward on mixed segmentation
and caption samples; vocabulary swap."""
import math

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.models.losses.grounding_loss import grounding_scores
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

CLIP = tiny_clip_cfg('vit')


def test_class_agnostic_dice_loss_hand_computed():
    gt = torch.zeros(2, 4, 4)
    gt[0, :, :2] = 1          # left half, 8 px
    gt[1, :2, 2:] = 1         # top-right quadrant, 4 px
    logits = torch.full((2, 4, 4), -30.0)
    logits[0, :, :2] = 30.0   # proposal = left half
    logits[1, :, 2:] = 30.0   # proposal = right half, 8 px
    loss = MODELS.build(dict(type='ClassAgnosticDiceLoss', loss_weight=2.0))
    # gt0: best Dice 1 -> 0;  gt1: best Dice 2*4/(8+4) = 2/3 -> 1/3
    assert loss([logits], [gt]).item() == pytest.approx(2.0 * (0 + 1 / 3) / 2, rel=1e-4)
    # ignored pixels are left out: ignoring the bottom-right quadrant makes
    # proposal 1 equal to gt1 on the valid pixels
    valid = torch.ones(4, 4, dtype=torch.bool)
    valid[2:, 2:] = False
    assert loss([logits], [gt], [valid]).item() == pytest.approx(0.0, abs=1e-4)


def test_grounding_scores_and_loss_hand_computed():
    regions = torch.tensor([[[1.0, 0.0], [0.0, 1.0]],     # image 0
                            [[1.0, 0.0], [1.0, 0.0]]])    # image 1
    words = torch.tensor([[[0.0, 2.0], [0.0, 0.0]],       # caption 0: one word
                          [[1.0, 0.0], [0.0, 1.0]]])      # caption 1: two words
    mask = torch.tensor([[True, False], [True, True]])
    g = grounding_scores(regions, words, mask, temperature=1.0)
    e = math.e
    a = e / (e + 1)  # word matching one of two orthogonal regions
    expect = [[a, (a + a) / 2], [0.0, (1.0 + 0.0) / 2]]
    assert g.tolist()[0] == pytest.approx(expect[0], rel=1e-5)
    assert g.tolist()[1] == pytest.approx(expect[1], abs=1e-6)
    loss = MODELS.build(dict(type='RegionWordGroundingLoss', temperature=1.0))
    value = loss(regions, words, mask).item()

    def ce(row, target):
        return -row[target] + math.log(sum(math.exp(v) for v in row))

    rows = expect
    cols = [[expect[0][0], expect[1][0]], [expect[0][1], expect[1][1]]]
    hand = (ce(rows[0], 0) + ce(rows[1], 1)) / 2 + (ce(cols[0], 0) + ce(cols[1], 1)) / 2
    assert value == pytest.approx(hand, rel=1e-5)


def openseg_cfg():
    return dict(
        type='OpenSegEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[120., 110., 100.],
                               std=[60., 60., 60.], bgr_to_rgb=True),
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=16, base_channels=8,
                      norm_cfg=dict(type='BN')),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP, templates='single'),
        decode_head=dict(type='OpenSegHead', in_channels=[8, 16, 32, 64], embed_dim=32,
                         channels=32, mask_channels=32, num_queries=4, num_layers=1,
                         num_heads=2, ffn_channels=64,
                         mask_loss=dict(type='ClassAgnosticDiceLoss', loss_weight=0.5)),
        vocabulary=['cat', 'dog', 'sky'])


def test_openseg_mixed_batch_loss_backward_and_inference():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(openseg_cfg()).train()
    seg = torch.zeros(1, 32, 32, dtype=torch.long)
    seg[:, :, 16:] = 1
    with_both = SegDataSample(metainfo=dict(img_shape=(32, 32),
                                            caption_words=['cat', 'mat']))
    with_both.gt_sem_seg = PixelData(data=seg)
    caption_only = SegDataSample(metainfo=dict(img_shape=(32, 32), caption_words=['Dog']))
    seg_only = SegDataSample(metainfo=dict(img_shape=(32, 32)))
    seg_only.gt_sem_seg = PixelData(data=torch.full_like(seg, 2))
    batch = [with_both, caption_only, seg_only]
    words = model.caption_word_embeddings(batch)
    assert list(words.vocabulary.names) == ['cat', 'mat', 'Dog']
    losses = model.loss(torch.randn(3, 3, 32, 32), batch)
    assert set(losses) == {'decode.loss_mask', 'decode.loss_grounding'}
    assert losses['decode.loss_mask'] > 0 and losses['decode.loss_grounding'] > 0
    sum(losses.values()).backward()
    head = model.decode_head
    assert head.region_proj.weight.grad is not None
    assert head.mask_decoder.mask_embed.layers[0].weight.grad is not None
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    # no captions in the batch: the grounding loss is zero, the mask loss stays
    losses = model.loss(torch.randn(2, 3, 32, 32), [seg_only, seg_only.clone()])
    assert losses['decode.loss_grounding'].item() == 0.0
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        three = model._forward(x)
        model.set_vocabulary(['cat', 'dog', 'sky', 'road'])
        four = model._forward(x)
        out = model.predict(x)
    assert three.shape == (1, 3, 8, 8) and four.shape == (1, 4, 8, 8)
    # scores are sums of proposal probabilities: classes sum to sum_i s_i(p)
    masks = head.predict_masks(model.extract_feat(x)).sigmoid().sum(1)
    torch.testing.assert_close(four.sum(1), masks, rtol=1e-4, atol=1e-5)
    assert out[0].pred_sem_seg.shape == (32, 32)


def test_query_decoder_learned_query_features_set_queries_apart():
    """With the default zero start (DETR / MaskFormer) the queries differ only
    through their positions, which change the attention weights and not the
    values: on a uniform image every query state is the same, so every
    proposal is the same mask. Learned query features (``query_features``,
    Mask2Former's ``query_feat``) start them apart; the default keeps the
    released decoders' parameters."""
    from mmovss.models.utils.maskformer_decoder import QueryDecoder
    uniform = torch.ones(2, 8, 4, 4)
    torch.manual_seed(0)
    zeros = QueryDecoder(8, 16, num_queries=5, num_layers=2, num_heads=2,
                         ffn_channels=32, dropout=0.0).eval()
    assert zeros.query_feat is None
    assert not any('query_feat' in k for k in zeros.state_dict())
    states = zeros(uniform)[-1]
    torch.testing.assert_close(states, states[:, :1].expand_as(states))
    torch.manual_seed(0)
    learned = QueryDecoder(8, 16, num_queries=5, num_layers=2, num_heads=2,
                           ffn_channels=32, dropout=0.0, query_features=True).eval()
    states = learned(uniform)[-1]
    assert (states - states[:, :1]).abs().amax() > 0.1
    head = MODELS.build(dict(type='OpenSegHead', in_channels=[8, 8, 8, 8], embed_dim=4,
                             channels=16, mask_channels=16, num_queries=5,
                             num_layers=1, num_heads=2, ffn_channels=32,
                             query_features=True))
    assert head.mask_decoder.query_decoder.query_feat.weight.shape == (5, 16)
