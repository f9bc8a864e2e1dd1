"""Hungarian matching on the inputs custom data produces (issue #23): empty
targets, zero-area masks and non-finite costs, for the matcher and for the
training loss of every mask-classification method (SAN, FC-CLIP, ZegFormer,
OVSeg) built from its OVShapes config."""
import copy

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.models.utils import HungarianMaskMatcher
from mmovss.models.utils.hungarian import NonFiniteMatchingCost
from mmovss.ovshapes import world

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

METHODS = ['san', 'fcclip', 'zegformer', 'ovseg']


def _case(num_queries=3, size=8):
    gt_masks = torch.zeros(2, size, size)
    gt_masks[0, :4] = 1
    gt_masks[1, 4:] = 1
    masks = torch.full((num_queries, size, size), -10.0)
    masks[0, 4:] = 10
    masks[2, :4] = 10
    logits = torch.full((num_queries, 4), -5.0)
    logits[0, 0] = 5
    logits[2, 2] = 5
    return logits, masks, torch.tensor([2, 0]), gt_masks


def test_empty_targets_match_nothing():
    logits, masks, _, _ = _case()
    q, g = HungarianMaskMatcher(num_points=64).match(
        logits, masks, torch.zeros(0, dtype=torch.long), torch.zeros(0, 8, 8))
    assert q.numel() == 0 and g.numel() == 0


def test_zero_area_mask_is_left_unmatched():
    logits, masks, labels, gt_masks = _case()
    # a third target of zero area between the two real ones
    labels = torch.tensor([2, 1, 0])
    gt_masks = torch.stack([gt_masks[0], torch.zeros(8, 8), gt_masks[1]])
    q, g = HungarianMaskMatcher(num_points=256).match(logits, masks, labels, gt_masks)
    # indices refer to the full target list; the empty target (1) is never matched
    assert sorted(zip(q.tolist(), g.tolist())) == [(0, 2), (2, 0)]
    only_empty = HungarianMaskMatcher(num_points=64).match(
        logits, masks, torch.tensor([1]), torch.zeros(1, 8, 8))
    assert only_empty[0].numel() == 0


@pytest.mark.parametrize('where', ['class', 'mask'])
@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_non_finite_logits_name_the_image(where, value):
    logits, masks, labels, gt_masks = _case()
    if where == 'class':
        logits[1, 3] = value
    else:
        masks[1, 0, 0] = value
    matcher = HungarianMaskMatcher(num_points=64)
    targets = [InstanceData(labels=labels, masks=gt_masks),
               InstanceData(labels=labels, masks=gt_masks,
                            metainfo=dict(img_path='photos/beach.jpg'))]
    batch_logits = torch.stack([_case()[0], logits])
    batch_masks = torch.stack([_case()[1], masks])
    with pytest.raises(NonFiniteMatchingCost) as err:
        matcher.match_batch(batch_logits, batch_masks, targets)
    text = str(err.value)
    assert 'image 1 of the batch (photos/beach.jpg)' in text
    assert f'{where} logits' in text
    assert ('1 NaN' in text) == (value != value)
    assert isinstance(err.value, ValueError)
    # the finite image alone still matches
    assert matcher.match(*_case()[:2], labels, gt_masks)[0].numel() == 2


def test_non_finite_cost_from_finite_logits_is_named():
    """Costs can overflow even when the logits are finite (huge weights)."""
    matcher = HungarianMaskMatcher(
        match_costs=[dict(type='ClassificationCost', weight=float('inf'))], num_points=16)
    logits, masks, labels, gt_masks = _case()
    with pytest.raises(NonFiniteMatchingCost, match='cost matrix is not finite'):
        matcher.match(logits, masks, labels, gt_masks, sample='sample 7')


# ------------------------------------------------------------- every method
@pytest.fixture(scope='module')
def models(repo_root):
    init_default_scope('mmseg')
    built = {}
    for method in METHODS:
        cfg = Config.fromfile(str(repo_root / f'configs/ovshapes/{method}_tiny-clip_1k_'
                                  'ovshapes-seen.py'))
        torch.manual_seed(0)
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.init_weights()
        model.set_vocabulary(list(world.seen_class_names()))
        model.train()
        built[method] = model
    return built


def _batch(model, labels):
    samples = []
    for i, label in enumerate(labels):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                             pad_shape=(64, 64), img_path=f'img_{i}.png'))
        sample.gt_sem_seg = PixelData(data=label[None].long())
        samples.append(sample)
    generator = torch.Generator().manual_seed(0)
    images = [torch.randint(0, 255, (3, 64, 64), generator=generator, dtype=torch.uint8)
              for _ in labels]
    return model.data_preprocessor(dict(inputs=images, data_samples=samples), True)


def _stripes():
    label = torch.zeros(64, 64, dtype=torch.long)
    label[32:] = 5
    return label


@pytest.mark.parametrize('method', METHODS)
def test_loss_with_an_all_ignored_image_is_finite(models, method):
    """An image without labelled pixels (no targets) next to a normal one."""
    model = models[method]
    data = _batch(model, [torch.full((64, 64), 255, dtype=torch.long), _stripes()])
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    model.zero_grad()


@pytest.mark.parametrize('method', METHODS)
def test_loss_with_only_ignored_pixels_is_finite(models, method):
    model = models[method]
    data = _batch(model, [torch.full((64, 64), 255, dtype=torch.long)])
    losses = model.loss(data['inputs'], data['data_samples'])
    assert all(torch.isfinite(v).all() for k, v in losses.items() if 'loss' in k)


@pytest.mark.parametrize('method', METHODS)
def test_nan_input_gives_the_matching_error(models, method):
    """NaN in an image (e.g. a broken float image) makes the predictions NaN;
    the loss fails with the matcher's message, not scipy's. (One image: batch
    normalisation in training mode spreads NaN over the whole batch.)"""
    model = models[method]
    data = _batch(model, [_stripes()])
    data['inputs'][0, :, :8, :8] = float('nan')
    with pytest.raises(NonFiniteMatchingCost, match=r'image 0 of the batch.*NaN'):
        model.loss(data['inputs'], data['data_samples'])


@pytest.mark.parametrize('method', METHODS)
def test_zero_area_target_in_the_loss(models, method):
    """A zero-area target (built by hand) is left unmatched by the criterion."""
    model = models[method]
    criterion = model.decode_head.criterion
    num_queries, num_classes = 5, 4
    class_logits = torch.randn(1, num_queries, num_classes + 1, requires_grad=True)
    mask_logits = torch.randn(1, num_queries, 16, 16, requires_grad=True)
    masks = torch.zeros(2, 16, 16)
    masks[0, :8] = 1
    targets = [InstanceData(labels=torch.tensor([1, 3]), masks=masks)]
    losses = criterion(class_logits, mask_logits, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    q, g = criterion.matcher.match_batch(class_logits.detach(), mask_logits.detach(),
                                         targets)[0]
    assert g.tolist() == [0]
    total.backward()
