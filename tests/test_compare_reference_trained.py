"""Side-by-side timing of trained methods against their official code
(``mmovss.benchmarking.official_reference``, ``tools/analysis_tools/compare_reference_trained.py``).

The generic part (timing, agreement, report) runs on two small torch modules
everywhere; the end-to-end check runs ZegFormer at tiny size against the
official code when a clone is at ``/work/official`` (else it skips).
"""
import argparse
import importlib.util
import os
import os.path as osp

import pytest
import torch

from mmovss.benchmarking import BenchmarkError
from mmovss.benchmarking.official_reference import (
    LABELS_TOLERANCE,
    MARKDOWN_FLOP_HEADER,
    MARKDOWN_HEADER,
    METHODS,
    agreement,
    class_names,
    flop_comparison,
    format_flop_comparison,
    format_report,
    markdown_row,
    random_image,
    side_by_side,
)
from mmovss.testing.tools import load_tool

# where the official clones were extracted (the test runs only where they and detectron2's
# dependencies are present; CI has neither)
OFFICIAL = os.environ.get('MMOVSS_OFFICIAL_CLONES', '/work/official')
D2_DEPENDENCIES = ('fvcore', 'iopath', 'yacs', 'omegaconf')


def _conv_pair(shift=0.0):
    """Two copies of one small conv net; the 'official' one's output shifted by ``shift``."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 5, 1)).eval()
    x = random_image((16, 24), seed=1)[None] / 255
    calls = []

    def ours():
        calls.append('ours')
        return net(x)[0]

    def official():
        calls.append('official')
        out = net(x)[0]
        if shift:
            out = out.clone()
            out[0] += shift  # class 0 raised everywhere: labels change where it wins
        return out

    return ours, official, calls


def test_side_by_side_equal_models():
    ours, official, calls = _conv_pair()
    result = side_by_side(ours, official, repeat=3, warmup=1)
    assert result['ok'] and result['max_diff'] == 0.0 and result['labels_equal'] == 1.0
    # warm-up + 3 timed calls each, alternating which goes first
    assert calls == ['ours', 'official', 'official', 'ours', 'ours', 'official',
                     'official', 'ours']
    assert len(result['ours']['runs']) == len(result['official']['runs']) == 3
    assert result['ratio'] == pytest.approx(result['ours']['median'] /
                                            result['official']['median'])
    assert result['cpu_ratio'] == pytest.approx(result['ours_cpu']['median'] /
                                                result['official_cpu']['median'])


def test_side_by_side_detects_differences():
    ours, official, _ = _conv_pair(shift=0.5)
    result = side_by_side(ours, official, repeat=1, warmup=0)
    assert result['max_diff'] == pytest.approx(0.5, abs=1e-6)
    assert not result['ok']
    # labels: the fraction of pixels whose argmax changes when class 0 is raised by 0.5
    scores = ours()
    raised = scores.clone()
    raised[0] += 0.5
    expected = (scores.argmax(0) == raised.argmax(0)).float().mean().item()
    assert result['labels_equal'] == pytest.approx(expected)
    # within the score tolerance but labels differ -> still not ok
    small = side_by_side(ours, official, repeat=1, warmup=0, atol=1.0)
    assert small['ok'] == (expected >= LABELS_TOLERANCE)


def test_agreement_and_report():
    scores = torch.rand(4, 6, 7)
    labels = scores.argmax(0)
    flipped = labels.clone()
    flipped[0, 0] = (flipped[0, 0] + 1) % 4
    got = agreement((scores, labels), (scores, flipped))
    assert got['max_diff'] == 0.0 and got['labels_equal'] == pytest.approx(1 - 1 / 42)
    with pytest.raises(BenchmarkError, match='shapes differ'):
        agreement(scores, scores[:, :5])
    with pytest.raises(BenchmarkError, match=r'\(C, H, W\)'):
        agreement(scores[0], scores[0])
    with pytest.raises(BenchmarkError, match='repeat'):
        side_by_side(lambda: scores, lambda: scores, repeat=0)
    ours, official, _ = _conv_pair()
    result = side_by_side(ours, official, repeat=1, warmup=0)
    text = format_report('toy', result, 'two conv nets')
    assert 'ratio ours/official' in text and 'OK' in text and 'toy: two conv nets' in text
    row = markdown_row('toy', result, 'python x.py')
    assert row.count('|') == MARKDOWN_HEADER.splitlines()[0].count('|')
    assert f'{result["ratio"]:.2f}' in row and '`python x.py`' in row


def test_flop_comparison_counts_each_model_and_rates_against_the_peak():
    torch.manual_seed(0)
    first, second = torch.nn.Linear(64, 32), torch.nn.Linear(32, 32)
    x = torch.randn(128, 64)

    def ours():  # class scores (C, H, W) = (32, 128, 1)
        return first(x).t()[:, :, None]

    def official():  # one more product than ours: 128 x 32 x 32 on top
        return second(first(x)).t()[:, :, None]

    result = side_by_side(ours, official, repeat=2, warmup=0)
    flops = flop_comparison(ours, official, result, peak_gflops=10.0)
    # hand count: 2 M K N per product (the bias add is not counted)
    assert flops['ours']['gflop'] * 1e9 == 2 * 128 * 64 * 32
    assert flops['official']['gflop'] * 1e9 == 2 * 128 * 64 * 32 + 2 * 128 * 32 * 32
    assert flops['flop_ratio'] == pytest.approx(2 / 3)
    threads = torch.get_num_threads()
    seconds = result['ours_cpu']['median'] / threads
    assert flops['ours']['achieved_gflops'] == pytest.approx(2 * 128 * 64 * 32 / seconds / 1e9)
    assert flops['ours']['fraction'] == pytest.approx(flops['ours']['achieved_gflops'] / 10.0)
    assert flops['peak_shape'] is None
    text = format_flop_comparison(flops)
    assert 'ratio 0.667' in text and 'peak 10.0 GFLOP/s' in text
    # measured peak: the shape carrying most of our FLOPs, (M, K, N) = (128, 64, 32)
    measured = flop_comparison(ours, official, result)
    assert measured['peak_shape'] == [128, 64, 32] and measured['peak_gflops'] > 0
    assert 'mm 128x64x32' in format_flop_comparison(measured)
    # --markdown --flops: the row of docs/benchmarks.md's FLOP table
    row = markdown_row('toy', result, 'python x.py', measured)
    assert row.count('|') == MARKDOWN_FLOP_HEADER.splitlines()[0].count('|')
    assert row.count('|') == MARKDOWN_FLOP_HEADER.splitlines()[1].count('|')
    assert '(0.667)' in row and 'mm 128 x 64 x 32' in row
    assert f'{measured["ours"]["achieved_gflops"]:.1f} GFLOP/s' in row
    assert f'({result["official_cpu"]["median"]:.2f})' in row
    assert row != markdown_row('toy', result, 'python x.py')
    with pytest.raises(BenchmarkError, match='peak_gflops'):
        flop_comparison(lambda: x + 1, lambda: x * 2, result)


def test_class_names_and_image():
    names = class_names(3)
    assert len(names) == 3 and len(set(names)) == 3
    with pytest.raises(BenchmarkError, match='--classes'):
        class_names(0)
    image = random_image((20, 30), seed=0)
    assert image.shape == (3, 20, 30) and image.min() >= 0 and image.max() <= 255
    assert torch.equal(image, image.round()) and torch.equal(image, random_image((20, 30), 0))
    with pytest.raises(BenchmarkError, match='--image-size'):
        random_image((4, 30), 0)


@pytest.mark.skipif(not osp.isdir(osp.join(OFFICIAL, 'ZegFormer', 'mask_former'))
                    or not osp.isdir(osp.join(OFFICIAL, 'detectron2', 'detectron2'))
                    or any(importlib.util.find_spec(m) is None for m in D2_DEPENDENCIES),
                    reason=f'no official ZegFormer / detectron2 clone under {OFFICIAL} '
                    f'(env MMOVSS_OFFICIAL_CLONES) or detectron2\'s dependencies '
                    f'{D2_DEPENDENCIES} not installed')
def test_zegformer_tiny_against_official():
    """The whole path of the tool: generator build, conversion, strict load, equal outputs."""
    from mmovss.testing.official_parity.official_code import (
        add_source_dirs,
        cuda_as_noop,
        seed_everything,
    )
    add_source_dirs(osp.join(OFFICIAL, 'detectron2'), osp.join(OFFICIAL, 'ZegFormer'))
    generator = load_tool('parity/zegformer_reference.py')
    args = argparse.Namespace(official_repo=osp.join(OFFICIAL, 'ZegFormer'), seed=0,
                              size='tiny', image_size=[32, 64], classes=class_names(3))
    seed_everything(0)
    with cuda_as_noop():
        pair = METHODS['zegformer'](generator, args)
        result = side_by_side(pair.ours, pair.official, repeat=1, warmup=0)
    assert result['ok'], format_report('zegformer', result, pair.description)
    assert result['max_diff'] <= 1e-4 and result['labels_equal'] >= LABELS_TOLERANCE


def _d2_missing(clone_dir: str, marker: str) -> bool:
    return (not osp.exists(osp.join(clone_dir, marker))
            or not osp.isdir(osp.join(OFFICIAL, 'detectron2', 'detectron2'))
            or any(importlib.util.find_spec(m) is None for m in D2_DEPENDENCIES))


SAN_CLONE = osp.join(OFFICIAL, 'SAN')
# OVSeg needs a full clone (third_party/CLIP included): env MMOVSS_OVSEG_CLONE
OVSEG_CLONE = os.environ.get('MMOVSS_OVSEG_CLONE', osp.join(OFFICIAL, 'ov-seg'))


def _tiny_side_by_side(method, repo, classes, image_size, generator=None):
    from mmovss.testing.official_parity.official_code import cuda_as_noop, seed_everything
    args = argparse.Namespace(official_repo=repo, detectron2=osp.join(OFFICIAL, 'detectron2'),
                              seed=0, size='tiny', image_size=list(image_size),
                              classes=class_names(classes))
    seed_everything(0)
    with cuda_as_noop():
        pair = METHODS[method](generator, args)
        result = side_by_side(pair.ours, pair.official, repeat=1, warmup=1)
    return pair, result


@pytest.mark.skipif(_d2_missing(SAN_CLONE, 'san/model/san.py'),
                    reason=f'no official SAN clone at {SAN_CLONE} / detectron2 clone under '
                    f'{OFFICIAL} (env MMOVSS_OFFICIAL_CLONES) or detectron2\'s dependencies')
def test_san_official_tiny_against_official():
    """SAN built by mmovss.benchmarking.official_builders (no generator) at the parity
    fixture's tiny sizes: conversion, strict load, equal scores and labels."""
    from mmovss.testing.official_parity.official_code import cuda_as_noop
    pair, result = _tiny_side_by_side('san_official', SAN_CLONE, 4, (64, 96))
    assert result['ok'], format_report('san_official', result, pair.description)
    assert result['max_diff'] <= 1e-4 and result['labels_equal'] >= LABELS_TOLERANCE
    assert 'side adapter width 16' in pair.description and '4 classes' in pair.description
    # FLOPs of both, counted with the models' parameter gradients off (a learned-query view
    # made under no_grad stops PyTorch's counter otherwise, as in FC-CLIP), restored after
    grads = [p.requires_grad for m in pair.modules for p in m.parameters()]
    with cuda_as_noop():
        flops = flop_comparison(pair.ours, pair.official, result, peak_gflops=1.0,
                                modules=pair.modules)
    assert [p.requires_grad for m in pair.modules for p in m.parameters()] == grads
    # ours skips the [SLS] tokens' products as keys of the patch tokens: fewer FLOPs
    assert 0.5 < flops['flop_ratio'] < 1.0
    assert flops['ours']['gflop'] > 0 and flops['official']['fraction'] > 0


@pytest.mark.skipif(_d2_missing(OVSEG_CLONE, 'third_party/CLIP/clip/model.py'),
                    reason=f'no full official OVSeg clone (third_party/CLIP) at {OVSEG_CLONE} '
                    f'(env MMOVSS_OVSEG_CLONE) / detectron2 clone or its dependencies')
def test_ovseg_tiny_against_official():
    """OVSeg: the official model of the generator's tiny sizes; every non-empty proposal
    classified by the mask-prompted CLIP on both sides."""
    generator = load_tool('parity/ovseg_reference.py')
    pair, result = _tiny_side_by_side('ovseg', OVSEG_CLONE, 4, (64, 64), generator)
    assert result['ok'], format_report('ovseg', result, pair.description)
    assert result['max_diff'] <= 1e-4 and result['labels_equal'] >= LABELS_TOLERANCE
    assert pair.extra['crops'] >= 1  # the CLIP branch ran (the ensemble is compared)
    with pytest.raises(BenchmarkError, match='multiples of 32'):
        METHODS['ovseg'](generator, argparse.Namespace(image_size=[60, 64]))
