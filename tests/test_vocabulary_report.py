"""The vocabulary report (issue #23): IoU bookkeeping by hand, the variants,
the summaries, and the tool on OVShapes (its reference variant agrees with
tools/test.py)."""
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from mmovss.evaluation.vocabulary_report import IoUCounts, Variant, build_variants, summarize_report
from mmovss.ovshapes import world
from mmovss.testing.tools import load_tool
from mmovss.vocab import Vocabulary

CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
CLEAR = 'model.backbone.last_block_mode=clearclip'


def test_iou_counts_by_hand():
    counts = IoUCounts(num_classes=3, ignore_index=255)
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    # vocabulary: 0->label 0, 1->label 1, 2->distractor, 3->label 2
    pred = np.array([[0, 1, 1, 2], [3, 0, 0, 1]])
    targets = np.array([0, 1, -1, 2])
    counts.update(pred, gt, targets, ignored=set())
    # label 0: pred {(0,0),(1,1)}, gt {(0,0),(0,1)} -> I 1, U 3
    # label 1: pred {(0,1),(0,2),(1,3)}, gt {(0,2),(0,3),(1,3)} -> I 2, U 4
    # label 2: pred {(1,0)}, gt {(1,0),(1,1)} -> I 1, U 2; the ignored pixel counts nowhere
    np.testing.assert_allclose(counts.iou(), [1 / 3, 2 / 4, 1 / 2])
    ignoring = IoUCounts(3, 255)
    ignoring.update(pred, gt, targets, ignored={2})
    # label-2 pixels leave the evaluation: label 0 loses the (1,1) false positive
    np.testing.assert_allclose(ignoring.iou()[:2], [1 / 2, 2 / 4])


def test_variants_of_a_vocabulary():
    vocab = Vocabulary(['background, bg', 'cat, kitten, kitty', 'dog'])
    variants = build_variants(vocab, template_sets=['single'],
                              distractors=['Dog', 'car', 'car '], background=[0])
    by_name = {v.name: v for v in variants}
    assert list(by_name) == ['all names', 'first name', 'name #2', 'name #3',
                             'templates: single', '+1 distractors', 'background ignored',
                             'one "background" class']
    assert by_name['name #3'].classes == [('background', ), ('kitty', ), ('dog', )]
    assert by_name['+1 distractors'].targets == [0, 1, 2, -1]  # 'Dog' is a class already
    assert by_name['background ignored'].classes == [vocab[1], vocab[2]]
    assert by_name['background ignored'].ignored == {0}
    assert by_name['one "background" class'].targets == [1, 2, -2]
    assert by_name['templates: single'].templates == ('a photo of a {}.', )


def test_summary_worst_case_and_helpful_names():
    vocab = Vocabulary(['cat, kitten', 'dog, puppy', 'sky'])
    variants = [Variant('all names', 'reference', list(vocab.classes), [0, 1, 2]),
                Variant('first name', 'names', [], [0, 1, 2]),
                Variant('name #2', 'names', [], [0, 1, 2]),
                Variant('templates: single', 'templates', [], [0, 1, 2])]
    ious = {'all names': np.array([0.5, 0.4, np.nan]),
            'first name': np.array([0.3, 0.5, 0.8]),
            'name #2': np.array([0.6, 0.2, 0.7]),
            'templates: single': np.array([0.4, 0.1, 0.9])}
    report = summarize_report(ious, vocab, variants, unseen=[1])
    assert math.isclose(report['worst_case_mIoU'], 100 * (0.3 + 0.1 + 0.7) / 3)
    # variant mIoUs: 45 (sky unscored), 53.3, 50, 46.7
    assert report['worst_variant'] == 'all names'
    assert report['worst_variant_mIoU'] == pytest.approx(45)
    cat = report['classes'][0]
    assert math.isclose(cat['std'], 100 * np.std([0.5, 0.3, 0.6, 0.4]))
    assert cat['min'] == pytest.approx(30) and cat['worst'] == 'first name'
    assert report['variants'][0]['mIoU_unseen'] == pytest.approx(40)
    helped = [(h['class_name'], h['name'], round(h['gain'], 6)) for h in
              report['names_that_helped']]
    # 'kitten' alone: 60 vs 30 with 'cat'; both names: 50 vs 30; dog's names did not help
    assert helped == [('cat', 'kitten', 30.0), ('cat', 'cat, kitten', 20.0)]


@pytest.fixture(scope='module')
def tiny_world(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('vocab_report_world')
    write_world(root, seed=2, num_train=0, num_val=4)
    return root


def test_tool_on_ovshapes_agrees_with_tools_test(repo_root, tiny_world, tmp_path, capsys):
    names = tmp_path / 'names.txt'
    synonyms = {'striped red': 'red stripes', 'dotted blue': 'blue dots', 'sky': 'blue sky'}
    names.write_text(''.join(f'{n}, {synonyms[n]}\n' if n in synonyms else f'{n}\n'
                             for n in world.class_names()))
    tool = load_tool('analysis_tools/vocabulary_report.py')
    out = tmp_path / 'report'
    code = tool.main([str(repo_root / CONFIG), '--names', str(names), '--templates', 'single',
                      '--distractors', 'striped pink; dotted black; sky',
                      '--background', 'sky', 'grass', 'sand', 'wall', '--out', str(out),
                      '--cfg-options', f'test_dataloader.dataset.data_root={tiny_world}',
                      CLEAR])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / 'report.json').read_text())
    names_of = [v['name'] for v in report['variants']]
    assert names_of == ['all names', 'first name', 'name #2', 'templates: single',
                        '+2 distractors', 'background ignored', 'one "background" class']
    assert report['num_images'] == 4 and report['distractors'] == ['striped pink',
                                                                   'dotted black', 'sky']
    assert (out / 'report.png').stat().st_size > 1000
    assert '| variant | kind | mIoU | mIoU seen | mIoU unseen |' in printed
    assert report['worst_case_mIoU'] <= report['reference_mIoU'] + 1e-9
    rows = {r['name']: r for r in report['classes']}
    assert rows['sky']['iou']['background ignored'] is None
    assert rows['plain red']['unseen'] and not rows['sky']['unseen']
    # 'first name' is exactly the dataset's vocabulary: tools/test.py's mIoU
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', CONFIG, '--work-dir', str(tmp_path / 'test'),
         '--cfg-options', f'test_dataloader.dataset.data_root={tiny_world}', CLEAR],
        cwd=repo_root, capture_output=True, text=True, timeout=600)
    match = re.search(r'mIoU: ([\d.]+)', proc.stdout + proc.stderr)
    assert match, (proc.stdout + proc.stderr)[-2000:]
    first = next(v for v in report['variants'] if v['name'] == 'first name')
    assert round(first['mIoU'], 2) == pytest.approx(float(match.group(1)), abs=0.011)


def test_max_images_counts_exactly_the_images_scored(repo_root, tiny_world, capsys):
    """Before: --max-images 0 scored one image and reported all of them; a
    batch of two scored both images under --max-images 1."""
    from mmovss.evaluation.vocabulary_report import run_vocabulary_report

    from mmengine.config import Config
    cfg = Config.fromfile(str(repo_root / CONFIG))
    cfg.merge_from_dict({'test_dataloader.dataset.data_root': str(tiny_world)})
    options = dict(template_sets=[], distractors=[], background=[], log=lambda _: None)
    with pytest.raises(ValueError, match='max_images must be >= 1'):
        run_vocabulary_report(cfg, max_images=0, **options)
    one = run_vocabulary_report(cfg, max_images=1, **options)
    cfg.merge_from_dict({'test_dataloader.batch_size': 2})
    batched = run_vocabulary_report(cfg, max_images=1, **options)
    assert one['num_images'] == batched['num_images'] == 1
    assert batched['reference_mIoU'] == pytest.approx(one['reference_mIoU'])
    tool = load_tool('analysis_tools/vocabulary_report.py')
    with pytest.raises(SystemExit):
        tool.main([str(repo_root / CONFIG), '--max-images', '0'])
    assert '--max-images must be >= 1' in capsys.readouterr().err


def test_user_errors_of_the_tool_are_one_line(repo_root, tiny_world):
    """A trained config without checkpoint: the message alone, exit code 2
    (before: the same message after a traceback)."""
    done = subprocess.run(
        [sys.executable, 'tools/analysis_tools/vocabulary_report.py',
         'configs/ovshapes/lseg_tiny-clip_1k_ovshapes-seen.py', '--cfg-options',
         f'test_dataloader.dataset.data_root={tiny_world}'],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert 'error: This model is a trained model' in done.stderr
    assert 'Traceback' not in done.stderr


def test_tool_with_benchmark_switch(repo_root, tmp_path, capsys):
    """``--benchmark KEY`` evaluates on that benchmark (mmovss.protocols), its
    name lists' synonyms becoming name variants."""
    from mmovss.testing.benchmark_data import make_benchmark_tree
    tree = make_benchmark_tree('voc20', 'mmseg', str(tmp_path / 'voc20'), 20)
    tool = load_tool('analysis_tools/vocabulary_report.py')
    out = tmp_path / 'report'
    assert tool.main([str(repo_root / CONFIG), '--benchmark', 'voc20', '--templates',
                      '--distractors', '', '--max-images', '1', '--out', str(out),
                      '--cfg-options', f'test_dataloader.dataset.data_root={tree.data_root}']) == 0
    report = json.loads((out / 'report.json').read_text())
    assert [r['name'] for r in report['classes']][:2] == ['aeroplane', 'bicycle']
    assert len(report['classes']) == 20 and report['num_images'] == 1
    assert [v['name'] for v in report['variants']] == ['all names', 'first name', 'name #2',
                                                       'name #3', 'name #4']
