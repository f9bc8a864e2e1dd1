"""Shared mask-classification pieces: Hungarian matching on a hand-made case,
mask pooling against a hand computation, the geometric-ensemble formula,
semantic inference and the set loss."""
import math

import torch

import mmovss  # noqa: F401
from mmovss.models.utils import (
    HungarianMaskMatcher,
    geometric_ensemble,
    seen_class_mask,
    semantic_inference,
)
from mmovss.vocab import Vocabulary

from mmengine.structures import InstanceData
from mmseg.registry import MODELS


def test_hungarian_matches_the_obvious_assignment():
    # query 0 predicts gt 1's mask and class, query 2 gt 0's; query 1 junk
    gt_masks = torch.zeros(2, 8, 8)
    gt_masks[0, :4] = 1
    gt_masks[1, 4:] = 1
    gt_labels = torch.tensor([2, 0])
    masks = torch.full((3, 8, 8), -10.0)
    masks[0, 4:] = 10
    masks[2, :4] = 10
    logits = torch.full((3, 4), -5.0)
    logits[0, 0] = 5
    logits[2, 2] = 5
    q, g = HungarianMaskMatcher(num_points=256).match(logits, masks,
                                                      gt_labels, gt_masks)
    assert sorted(zip(q.tolist(), g.tolist())) == [(0, 1), (2, 0)]


def test_mask_pooling_equals_hand_average():
    pool = MODELS.build(dict(type='MaskPooling'))
    feats = torch.arange(2 * 2 * 2, dtype=torch.float).view(1, 2, 2, 2)
    masks = torch.tensor([[[[1., -1.], [1., -1.]],  # left column
                           [[-1., -1.], [-1., -1.]]]])  # empty
    out = pool(feats, masks)
    # channel 0 = [[0, 1], [2, 3]], channel 1 = [[4, 5], [6, 7]]
    torch.testing.assert_close(out[0, 0], torch.tensor([1.0, 5.0]))
    torch.testing.assert_close(out[0, 1], torch.zeros(2))


def test_geometric_ensemble_formula():
    p_in_logits = torch.log(torch.tensor([[[0.5, 0.2, 0.1, 0.2]]]))
    p_out = torch.tensor([[[0.2, 0.3, 0.5]]])
    seen = torch.tensor([True, False, True])
    out = geometric_ensemble(p_in_logits, p_out.log(), seen, 0.4, 0.8)
    p_in = torch.tensor([0.5, 0.2, 0.1]) / 0.8
    a, b = 0.4, 0.8
    s = torch.stack([p_in[0]**(1 - a) * p_out[0, 0, 0]**a,
                     p_in[1]**(1 - b) * p_out[0, 0, 1]**b,
                     p_in[2]**(1 - a) * p_out[0, 0, 2]**a])
    expect = torch.cat([s / s.sum() * 0.8, torch.tensor([0.2])])
    torch.testing.assert_close(out[0, 0].exp(), expect + 1e-8, atol=1e-6,
                               rtol=1e-5)
    # invalid (empty) masks keep the in-vocabulary distribution
    kept = geometric_ensemble(p_in_logits, p_out.log(), seen, 0.4, 0.8,
                              valid=torch.tensor([[False]]))
    torch.testing.assert_close(kept[0, 0, :3].exp(), p_in * 0.8 + 1e-8)


def test_seen_mask_uses_synonyms():
    vocab = Vocabulary(['cat, kitty', 'sofa', 'tree'])
    assert seen_class_mask(vocab, ['Kitty', 'tree']).tolist() == [
        True, False, True]


def test_semantic_inference_formula():
    masks = torch.tensor([[[[0.0]], [[math.log(3)]]]])  # sigmoid 0.5, 0.75
    cls = torch.log(torch.tensor([[[0.6, 0.2, 0.2], [0.1, 0.7, 0.2]]]))
    out = semantic_inference(masks, cls)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(
        [0.6 * 0.5 + 0.1 * 0.75, 0.2 * 0.5 + 0.7 * 0.75]))


def test_set_loss_prefers_correct_predictions():
    loss = MODELS.build(dict(type='MaskClassificationLoss', num_points=64))
    gt = InstanceData(labels=torch.tensor([1]),
                      masks=torch.zeros(1, 8, 8).index_fill_(1,
                                                             torch.arange(4),
                                                             1))
    good_masks = torch.full((1, 2, 8, 8), -8.0)
    good_masks[0, 0, :4] = 8
    good_cls = torch.tensor([[[-4., 4., -4.], [-4., -4., 4.]]])
    bad_cls = torch.tensor([[[4., -4., -4.], [4., -4., -4.]]])
    good = loss(good_cls, good_masks, [gt])
    bad = loss(bad_cls, -good_masks, [gt])
    for key in good:
        assert good[key] < bad[key], key
