"""Property-based tests (hypothesis) of the vocabulary parser and the metric.

Vocabulary: any list of classes is either rejected with a ``ValueError``
(empty vocabulary, empty name, duplicated class) or parsed into normalised
names that survive a round trip through ``to_list()`` and a text file, and
do not depend on white space or on how the classes were given.

Metric (:class:`OpenVocabIoUMetric`): equal to mmseg's ``IoUMetric``; 100
exactly when the prediction matches every labelled pixel; unchanged by a
consistent permutation of the class ids, by the order and batching of the
images, and by what is predicted on ignored pixels.
"""
import os
import tempfile
import unicodedata

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mmovss.evaluation import OpenVocabIoUMetric
from mmovss.vocab import Vocabulary

from mmseg.evaluation import IoUMetric  # noqa: I001 (after mmovss)

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Printable characters of any script (letters, digits, punctuation, symbols,
# spaces), no commas (the synonym separator).
CHARS = st.characters(
    whitelist_categories=('L', 'N', 'P', 'S', 'Zs'), blacklist_characters=',')
RAW_NAME = st.text(CHARS, max_size=8)
# A class as a user might type it: synonyms joined by commas, any spacing.
RAW_CLASS = st.lists(RAW_NAME, min_size=1, max_size=3).map(','.join)


def _normalise(name):
    return unicodedata.normalize('NFC', ' '.join(name.split()))


def _expected(raw_classes):
    """Independent statement of the parsing rules: the parsed classes, or
    None when the vocabulary must be rejected."""
    classes = [tuple(_normalise(n) for n in c.split(',')) for c in raw_classes]
    if not classes or any(not n for c in classes for n in c):
        return None
    keys = [c[0].lower() for c in classes]
    if len(set(keys)) != len(keys):
        return None
    return tuple(classes)


@SETTINGS
@given(st.lists(RAW_CLASS, max_size=6))
def test_vocabulary_parses_or_rejects_by_the_rules(raw_classes):
    expected = _expected(raw_classes)
    if expected is None:
        with pytest.raises(ValueError, match='empty|both named'):
            Vocabulary(raw_classes)
        return
    vocab = Vocabulary(raw_classes)
    assert vocab.classes == expected
    assert vocab.num_classes == len(raw_classes)
    assert vocab.names == tuple(n for c in expected for n in c)
    assert [vocab.class_names[i] for i in vocab.name_to_class] == \
        [c[0] for c in expected for _ in c]
    for name in vocab.names:
        assert name and name == name.strip() and '  ' not in name
        assert ',' not in name and unicodedata.is_normalized('NFC', name)


@st.composite
def valid_vocabularies(draw, comment_free=False):
    name = st.text(CHARS, min_size=1, max_size=8).map(_normalise).filter(bool)
    if comment_free:  # a file line starting with '#' is a comment
        name = name.filter(lambda n: not n.startswith('#'))
    classes = draw(st.lists(st.lists(name, min_size=1, max_size=3),
                            min_size=1, max_size=6,
                            unique_by=lambda c: c[0].lower()))
    return Vocabulary(classes)


@SETTINGS
@given(valid_vocabularies(comment_free=True))
def test_vocabulary_round_trips_through_lists_files_and_metainfo(vocab):
    assert Vocabulary(vocab.to_list()) == vocab
    assert Vocabulary([list(c) for c in vocab.classes]) == vocab
    assert Vocabulary.build(dict(classes=tuple(vocab.to_list()))) == vocab
    for encoding in ('utf-8', 'utf-8-sig'):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, 'classes.txt')
            with open(path, 'w', encoding=encoding) as f:
                f.write('# classes\n\n' + '\n'.join(vocab.to_list()) + '\n')
            assert Vocabulary.build(path) == vocab


@SETTINGS
@given(valid_vocabularies(), st.data())
def test_vocabulary_ignores_white_space(vocab, data):
    space = st.text(st.sampled_from(' \t\u3000\u00a0'), max_size=3)

    def spaced(names):
        return ','.join(data.draw(space) + n.replace(' ', data.draw(
            space.filter(bool))) + data.draw(space) for n in names)

    assert Vocabulary([spaced(c) for c in vocab.classes]) == vocab


# ------------------------------------------------------------ metric
IGNORE = 255


@st.composite
def label_maps(draw, max_classes=6, max_images=3):
    """(num_classes, [(pred, gt), ...]) with some ignored ground truth."""
    num_classes = draw(st.integers(1, max_classes))
    images = []
    for _ in range(draw(st.integers(1, max_images))):
        shape = (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
        gt = draw(arrays(np.int64, shape, elements=st.sampled_from(
            list(range(num_classes)) + [IGNORE])))
        pred = draw(arrays(np.int64, shape,
                           elements=st.integers(0, num_classes - 1)))
        images.append((pred, gt))
    return num_classes, images


def _samples(images):
    return [dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                 gt_sem_seg=dict(data=torch.from_numpy(gt)[None]),
                 img_path=f'img/{i}.jpg')
            for i, (pred, gt) in enumerate(images)]


def _run(metric, num_classes, images, batches=None):
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(num_classes)])
    samples = _samples(images)
    for batch in (batches or [samples]):
        metric.process({}, batch)
    return metric.compute_metrics(metric.results), metric.results


def _has_labels(images):
    return any((gt != IGNORE).any() for _, gt in images)


@SETTINGS
@given(label_maps())
def test_metric_equals_mmseg_iou_metric(case):
    num_classes, images = case
    assume(_has_labels(images))
    theirs, _ = _run(IoUMetric(iou_metrics=['mIoU', 'mDice']), num_classes,
                     images)
    ours, _ = _run(OpenVocabIoUMetric(iou_metrics=['mIoU', 'mDice']),
                   num_classes, images)
    for key, value in theirs.items():
        assert ours[key] == value or (np.isnan(ours[key]) and
                                      np.isnan(value)), key


@SETTINGS
@given(label_maps())
def test_miou_is_100_exactly_when_every_labelled_pixel_is_right(case):
    num_classes, images = case
    assume(_has_labels(images))
    result, _ = _run(OpenVocabIoUMetric(), num_classes, images)
    correct = all((pred == gt)[gt != IGNORE].all() for pred, gt in images)
    assert 0 <= result['mIoU'] <= 100
    assert (result['mIoU'] == 100) == correct
    assert (result['aAcc'] == 100) == correct
    perfect = [(np.where(gt == IGNORE, pred, gt), gt) for pred, gt in images]
    result, _ = _run(OpenVocabIoUMetric(), num_classes, perfect)
    assert result['mIoU'] == result['aAcc'] == result['mAcc'] == 100


@SETTINGS
@given(label_maps(), st.randoms(use_true_random=False))
def test_consistent_class_permutation_leaves_the_scores_unchanged(case, rng):
    num_classes, images = case
    assume(_has_labels(images))
    perm = list(range(num_classes))
    rng.shuffle(perm)
    lut = np.full(IGNORE + 1, IGNORE)
    lut[:num_classes] = perm
    permuted = [(lut[pred], lut[gt]) for pred, gt in images]
    before, areas = _run(OpenVocabIoUMetric(), num_classes, images)
    after, permuted_areas = _run(OpenVocabIoUMetric(), num_classes, permuted)
    # per-class areas move with their class ...
    for a, b in zip(areas, permuted_areas):
        for x, y in zip(a, b):
            assert torch.equal(y[perm], x)
    # ... so the means are the same (up to the summation order of floats)
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert after[key] == pytest.approx(before[key], abs=0.01 + 1e-9)


@SETTINGS
@given(label_maps(max_images=4), st.randoms(use_true_random=False))
def test_image_order_and_batching_do_not_matter(case, rng):
    num_classes, images = case
    assume(_has_labels(images))
    reference, _ = _run(OpenVocabIoUMetric(), num_classes, images)
    samples = _samples(images)
    rng.shuffle(samples)
    cut = rng.randint(0, len(samples))
    batches = [b for b in (samples[:cut], samples[cut:]) if b]
    shuffled, _ = _run(OpenVocabIoUMetric(), num_classes, images, batches)
    assert shuffled == reference


@SETTINGS
@given(label_maps(), st.integers(0, 2**31 - 1))
def test_predictions_on_ignored_pixels_do_not_count(case, seed):
    num_classes, images = case
    assume(_has_labels(images))
    gen = np.random.default_rng(seed)
    changed = [(np.where(gt == IGNORE,
                         gen.integers(0, num_classes, pred.shape), pred), gt)
               for pred, gt in images]
    assert _run(OpenVocabIoUMetric(), num_classes, changed)[0] == \
        _run(OpenVocabIoUMetric(), num_classes, images)[0]
