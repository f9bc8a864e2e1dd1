"""Stage oracles of mask-classification segmentors
(:mod:`mmovss.evaluation.stage_oracles`, ``tools/analysis_tools/stage_oracles.py``).

The pure pieces are checked on hand-made masks; the whole measurement on a
tiny OVShapes world with the OVSeg config, whose proposals or CLIP crop
classifier are replaced by perfect ones (then the oracle run must score
100 mIoU) or by ones without confidence (then it must not).
"""
import os
import subprocess
import sys

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.evaluation.stage_oracles import (
    format_oracle_report,
    gt_at_input,
    gt_segment_logits,
    majority_labels,
    oracle_label_scores,
    segment_label_scores,
    stage_oracles,
)

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'configs', 'ovshapes', 'ovseg_tiny-clip_1k_ovshapes-seen.py')


def test_gt_is_resized_and_padded_like_the_image():
    gt = torch.tensor([[0, 1], [2, 3]])
    meta = dict(img_shape=(4, 4), padding_size=[1, 0, 2, 0])
    out = gt_at_input(gt, meta, (6, 5))
    assert out.shape == (6, 5)
    assert (out[:2] == 255).all() and (out[:, 0] == 255).all()
    assert out[2:4, 1:3].eq(0).all() and out[2:4, 3:5].eq(1).all()
    assert out[4:6, 1:3].eq(2).all() and out[4:6, 3:5].eq(3).all()
    with pytest.raises(ValueError, match='flip'):
        gt_at_input(gt, dict(flip=True), (2, 2))


def test_majority_label_ignores_void_pixels_and_empty_proposals():
    gt = torch.tensor([[0, 0, 1, 1],
                       [0, 255, 255, 1]])
    masks = torch.full((3, 2, 4), -10.0)
    masks[0, :, :3] = 10   # class 0: 3 pixels, class 1: 1, ignored: 2
    masks[1, 1, 1:3] = 10  # ignored pixels only
    masks[2, :, 2:] = 10   # class 1: 3 pixels, ignored: 1
    classes, named = majority_labels(masks, gt, num_classes=2)
    assert classes[0] == 0 and classes[2] == 1
    assert named.tolist() == [True, False, True]


def test_oracle_label_scores_keep_the_model_objectness():
    gt = torch.tensor([[0, 0, 1, 1]])
    masks = torch.full((2, 1, 4), -20.0)
    masks[0, :, :2] = 20
    masks[1, :, 2:] = 20
    sure = torch.tensor([[0.0, 0.0, -20.0], [0.0, 0.0, -20.0]])  # void last
    scores = oracle_label_scores(masks, sure, gt)
    assert torch.equal(scores.argmax(0), gt)
    assert scores.max() == pytest.approx(1.0, abs=1e-6)
    void = sure.clone()
    void[1, -1] = 20.0  # the second proposal says "no object"
    assert oracle_label_scores(masks, void, gt)[:, 0, 2:].max() < 1e-6


def test_gt_segments_round_trip():
    gt = torch.tensor([[3, 3, 7], [255, 7, 7]])
    logits, classes = gt_segment_logits(gt, num_classes=8)
    assert classes.tolist() == [3, 7] and logits.shape == (2, 2, 3)
    assert torch.equal(logits[1] > 0, gt == 7)
    labels = segment_label_scores(gt, classes, classes, 8).argmax(0)
    keep = gt != 255
    assert torch.equal(labels[keep], gt[keep])
    swapped = segment_label_scores(gt, classes, classes.flip(0), 8).argmax(0)
    assert swapped[0, 0] == 7 and swapped[0, 2] == 3


@pytest.fixture(scope='module')
def tiny_world(make_ovshapes_world):
    return make_ovshapes_world(num_val=3, seed=7)


def _cfg(world):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': world})
    return cfg


def _model(cfg):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def _ovshapes_model(name, world):
    """The config ``configs/ovshapes/<name>`` on ``world`` and its model."""
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'ovshapes', name))
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': world})
    return cfg, _model(cfg)


class GroundTruthByImage:
    """Finds the ground truth of an image of the world from its pixels (the
    sum of its pixel values does not depend on the channel order)."""

    def __init__(self, cfg):
        from mmengine.runner import Runner
        loader = Runner.build_dataloader(cfg.test_dataloader)
        self.items = []
        for data in loader:
            image = data['inputs'][0].float()
            gt = data['data_samples'][0].gt_sem_seg.data[0].long()
            self.items.append((float(image.sum()), gt))

    def __call__(self, pixels):
        total = float(pixels.float().sum())
        return min(self.items, key=lambda item: abs(item[0] - total))[1]


def perfect_mask_namer(cfg, named):
    """A stand-in for a head's embedding of given masks, ``(inputs, (1, K, H,
    W) mask logits) -> (1, K, 40)``: one-hot on the class of the ground-truth
    segment each mask equals (appended to ``named``), zero otherwise."""
    segments = [(gt == c, c) for _, gt in GroundTruthByImage(cfg).items
                for c in torch.unique(gt).tolist() if c != 255]

    def embed(inputs, masks):
        out = torch.zeros(*masks.shape[:2], 40)
        for q, mask in enumerate(masks[0] > 0):
            for region, cls in segments:
                if region.shape == mask.shape and torch.equal(region, mask):
                    out[0, q, cls] = 1.0
                    named.append(cls)
        return out
    return embed


def test_perfect_proposals_reach_100_and_void_proposals_do_not(tiny_world):
    cfg = _cfg(tiny_world)
    model = _model(cfg)
    truth = GroundTruthByImage(cfg)
    head = model.decode_head
    num_classes = 40

    def perfect_sets(inputs, class_embeds, void=-20.0):
        masks, logits = [], []
        for pixels in inputs[-1]:
            gt = truth(pixels)
            seg, classes = gt_segment_logits(gt, num_classes)
            q = torch.full((16, *gt.shape), -20.0)
            q[:len(classes)] = seg
            masks.append(q)
            cls = torch.zeros(16, num_classes + 1)
            cls[:, -1] = void
            logits.append(cls)
        return [torch.stack(masks)], [torch.stack(logits)]

    head.forward_sets = perfect_sets
    result = stage_oracles(cfg, model=model)
    assert result['images'] == 3
    assert set(result['metrics']) == {'model', 'oracle_labels', 'oracle_masks'}
    labels = result['metrics']['oracle_labels']
    assert labels['mIoU'] == pytest.approx(100.0)
    assert labels['mIoU_unseen'] == pytest.approx(100.0)
    head.forward_sets = lambda inputs, embeds: perfect_sets(inputs, embeds, void=20.0)
    unsure = stage_oracles(cfg, model=model)['metrics']['oracle_labels']
    assert unsure['mIoU'] < 50.0


def test_a_perfect_crop_classifier_reaches_100(tiny_world):
    cfg = _cfg(tiny_world)
    model = _model(cfg)
    truth = GroundTruthByImage(cfg)
    classifier = model.decode_head.region_classifier
    calls = []

    def perfect_classifier(pixels, mask_logits, class_embeds, *args, **kwargs):
        gt = truth(pixels[0])
        logits = torch.zeros(1, mask_logits.shape[1], class_embeds.num_classes)
        masks = torch.nn.functional.interpolate(mask_logits.float(), size=gt.shape)
        for k, mask in enumerate(masks[0] > 0):  # the model's proposals too
            if mask.any():
                logits[0, k, gt[mask].mode().values] = 1.0
        calls.append(mask_logits.shape[1])
        return logits, torch.ones(logits.shape[:2], dtype=torch.bool)

    classifier.forward = perfect_classifier
    result = stage_oracles(cfg, model=model, max_images=2)
    assert result['images'] == 2 and len(calls) >= 2
    assert result['metrics']['oracle_masks']['mIoU'] == pytest.approx(100.0)
    naming = result['segment_naming']
    segments = sum(len(torch.unique(gt[gt != 255])) for _, gt in truth.items[:2])
    assert naming['groups']['all'] == dict(segments=segments, named_right=100.0,
                                           wrong_as_seen=0, wrong_as_unseen=0)
    assert naming['groups']['seen']['segments'] + naming['groups']['unseen']['segments'] \
        == segments

    def constant_classifier(pixels, mask_logits, class_embeds, *args, **kwargs):
        logits = torch.zeros(1, mask_logits.shape[1], class_embeds.num_classes)
        logits[..., 0] = 1.0
        return logits, torch.ones(logits.shape[:2], dtype=torch.bool)

    classifier.forward = constant_classifier
    constant = stage_oracles(cfg, model=model, max_images=2)
    wrong = constant['metrics']['oracle_masks']
    assert wrong['mIoU'] < 20.0
    # every segment is named class 0 (a seen class): right only for class 0's own
    from mmengine.runner import Runner
    name0 = Runner.build_dataloader(cfg.test_dataloader).dataset.metainfo['classes'][0]
    per_class = constant['segment_naming']['per_class']
    own = per_class.get(name0, dict(segments=0))['segments']
    assert all(v['named_right'] == (100.0 if k == name0 else 0.0)
               and v['wrong_as_unseen'] == 0 for k, v in per_class.items())
    all_ = constant['segment_naming']['groups']['all']
    assert all_['segments'] == segments
    assert all_['wrong_as_seen'] == segments - own
    report = format_oracle_report(result)
    assert 'oracle_masks' in report and 'named right: all 100.0%' in report


def test_fcclip_names_ground_truth_masks_by_mask_pooling(tiny_world):
    """FC-CLIP's oracle-mask run pools its frozen CLIP inside each ground-truth
    mask: with a pooling that recognises the masks perfectly it scores 100."""
    from mmovss.evaluation.stage_oracles import mask_classifier_kind
    cfg, model = _ovshapes_model('fcclip_tiny-clip_1k_ovshapes-seen.py', tiny_world)
    head = model.decode_head
    assert mask_classifier_kind(head) == 'pooling'
    pooled_masks = []
    head.pooled_clip_embeddings = perfect_mask_namer(cfg, pooled_masks)
    head.out_vocab_logits = lambda pooled, class_embeds: pooled
    result = stage_oracles(cfg, model=model, max_images=2)
    assert result['metrics']['oracle_masks']['mIoU'] == pytest.approx(100.0)
    assert len(pooled_masks) >= 2  # every ground-truth segment went through the pooling


def test_openseg_proposals_as_a_set_and_named_by_its_region_embeddings(tiny_world):
    """OpenSeg's proposals join the oracles: ``forward_sets`` gives its masks
    with class logits whose "no object" column is -inf (so the semantic
    inference of the set is the head's own output), its region embedding of
    a given mask is the pooling its proposals use, and an oracle-mask run
    names every ground-truth segment through that embedding (100 with a
    perfect one)."""
    from mmovss.evaluation.stage_oracles import mask_classifier_kind
    from mmovss.models.utils.mask_classification import semantic_inference
    cfg, model = _ovshapes_model('openseg_tiny-clip_1k_ovshapes-seen-captions.py',
                                 tiny_world)
    head = model.decode_head
    assert mask_classifier_kind(head) == 'regions'
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(cfg.test_dataloader)
    model.set_dataset_vocabulary(loader.dataset.metainfo)  # all 40 names
    data = next(iter(loader))
    with torch.no_grad():
        inputs = model.data_preprocessor(data, False)['inputs']
        feats = model.extract_feat(inputs)
        class_embeds = model.head_class_embeds(model.class_embeddings())
        (masks,), (logits,) = head.forward_sets(feats, class_embeds)
        assert logits.shape[-1] == class_embeds.num_classes + 1
        assert torch.isinf(logits[..., -1]).all() and (logits[..., -1] < 0).all()
        scores = semantic_inference(masks, logits[..., :-1].softmax(-1), class_probs=True)
        torch.testing.assert_close(scores, head(feats, class_embeds))
        _, regions = head.proposals(feats)
        torch.testing.assert_close(head.region_embeddings_of_masks(feats, masks), regions,
                                   rtol=1e-5, atol=1e-6)
    named = []
    head.region_embeddings_of_masks = perfect_mask_namer(cfg, named)
    head.region_class_logits = lambda regions, class_embeds: regions
    result = stage_oracles(cfg, model=model, max_images=2)
    assert result['metrics']['oracle_masks']['mIoU'] == pytest.approx(100.0)
    assert len(named) >= 2


def test_segment_naming_counts_by_hand():
    from mmovss.evaluation import unseen_class_indices
    from mmovss.evaluation.stage_oracles import SegmentNaming
    naming = SegmentNaming(['sky', 'red', 'blue', 'green'], unseen=[2, 3])
    naming.add(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]))  # red named blue
    naming.add(torch.tensor([0, 3]), torch.tensor([1, 3]))         # sky named red
    result = naming.result()
    assert result['groups']['all'] == dict(segments=5, named_right=60.0,
                                           wrong_as_seen=1, wrong_as_unseen=1)
    assert result['groups']['seen'] == dict(segments=3, named_right=33.33,
                                            wrong_as_seen=1, wrong_as_unseen=1)
    assert result['groups']['unseen'] == dict(segments=2, named_right=100.0,
                                              wrong_as_seen=0, wrong_as_unseen=0)
    assert result['per_class']['sky'] == dict(segments=2, named_right=50.0,
                                              wrong_as_seen=1, wrong_as_unseen=0)
    assert set(result['per_class']) == {'sky', 'red', 'blue', 'green'}
    # the split comes from the evaluator config, by index or by name
    classes = ['sky', 'red', 'blue', 'green']
    assert unseen_class_indices(dict(type='OpenVocabIoUMetric',
                                     unseen_classes=['blue', 3]), classes) == [2, 3]
    assert unseen_class_indices([dict(type='IoUMetric')], classes) is None
    no_split = SegmentNaming(classes).result()
    assert set(no_split['groups']) == {'all'} and no_split['per_class'] == {}


def test_heads_without_proposals_are_refused(tiny_world):
    cfg = Config.fromfile(os.path.join(REPO, 'configs', 'ovshapes',
                                       'dense-refine_tiny-clip_1k_ovshapes-seen.py'))
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': tiny_world})
    with pytest.raises(ValueError, match='mask-classification head'):
        stage_oracles(cfg, max_images=1)


def test_command_line(tmp_path, tiny_world):
    tool = os.path.join(REPO, 'tools', 'analysis_tools', 'stage_oracles.py')
    missing = subprocess.run([sys.executable, tool, CONFIG, str(tmp_path / 'none.pth')],
                             capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and 'none.pth' in missing.stderr
    cfg = _cfg(tiny_world)
    model = _model(cfg)
    checkpoint = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    out = tmp_path / 'oracles.json'
    done = subprocess.run([sys.executable, tool, CONFIG, checkpoint, '--max-images', '1',
                           '--json', str(out), '--cfg-options',
                           f'test_dataloader.dataset.data_root={tiny_world}'],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'oracle_labels' in done.stdout and 'mIoU_unseen' in done.stdout
    import json
    result = json.loads(out.read_text())
    assert result['images'] == 1
    # the model run of the tool is the model: same as building it here
    direct = stage_oracles(cfg, model=model, max_images=1)['metrics']['model']
    assert result['metrics']['model']['mIoU'] == pytest.approx(direct['mIoU'])


def test_a_checkpoint_of_another_model_names_its_keys(tmp_path, tiny_world):
    """Before: mmengine's raw key lists ('do not match exactly'), unlike tools/test.py."""
    cfg = _cfg(tiny_world)
    foreign = tmp_path / 'foreign.pth'
    torch.save(dict(state_dict={'decode_head.other.weight': torch.zeros(1)}, meta={}), foreign)
    with pytest.raises(ValueError, match=r"foreign.pth' does not fit the model") as info:
        stage_oracles(cfg, str(foreign), max_images=1)
    assert '--non-strict' not in str(info.value)


def test_an_empty_test_set_is_refused(tmp_path, tiny_world):
    """Before: a ZeroDivisionError in mmengine's sampler."""
    cfg = _cfg(tiny_world)
    cfg.merge_from_dict({'test_dataloader.dataset.indices': 0,
                         'test_dataloader.dataset.serialize_data': False})
    with pytest.raises(ValueError, match='the test set of this config has no image'):
        stage_oracles(cfg)


def test_an_explicit_vocabulary_of_other_classes_is_refused(tiny_world):
    """As tools/test.py (DatasetVocabularyHook); before: three names scored
    against the 40 labels of the test set without a word."""
    cfg = _cfg(tiny_world)
    cfg.merge_from_dict({'model.vocabulary': ['cat', 'dog', 'sky']})
    with pytest.raises(ValueError, match='explicit vocabulary .* does not match the test dataset'):
        stage_oracles(cfg, model=_model(cfg), max_images=1)
