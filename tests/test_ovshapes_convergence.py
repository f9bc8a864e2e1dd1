"""mmovss.ovshapes.convergence: loss curves of training runs and their late fall (issue #22)."""
import json

import pytest

from mmovss.ovshapes.convergence import CurveError, curves_markdown, late_drop, read_loss_curve
from mmovss.ovshapes.table import mean_curve


def _write_scalars(train_dir, rows, stamp='20260101_000000'):
    path = train_dir / stamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text('\n'.join(json.dumps(r) for r in rows) + '\n')
    return path


def test_reads_training_lines_only_and_keeps_the_later_of_a_resumed_iteration(tmp_path):
    _write_scalars(tmp_path, [
        dict(iter=100, loss=3.0, lr=0.1, step=100),
        dict(iter=200, loss=2.0, step=200),
        dict(mIoU=10.0, step=200),                    # a validation line
        dict(iter=200, loss=1.5, step=200),           # logged again after a resume
        dict(iter=300, loss=1.0, step=300)])
    assert read_loss_curve(tmp_path) == [(100, 3.0), (200, 1.5), (300, 1.0)]


def test_reads_the_newest_run_of_a_work_dir(tmp_path):
    _write_scalars(tmp_path, [dict(iter=1, loss=9.0)], stamp='20260101_000000')
    _write_scalars(tmp_path, [dict(iter=1, loss=4.0)], stamp='20260102_000000')
    assert read_loss_curve(tmp_path) == [(1, 4.0)]


def test_a_work_dir_without_a_curve_says_so(tmp_path):
    with pytest.raises(CurveError, match='scalars.json'):
        read_loss_curve(tmp_path)
    _write_scalars(tmp_path, [dict(mIoU=3.0, step=1)])
    with pytest.raises(CurveError, match='no training line'):
        read_loss_curve(tmp_path)


def test_late_drop_of_a_straight_line_is_its_relative_fall():
    curve = [(i, 2.0 - 0.001 * i) for i in range(100, 1001, 100)]
    # second half: iterations 500..1000, the line falls 0.5 to end at 1.0
    assert late_drop(curve) == pytest.approx(0.5)
    assert late_drop(curve, fraction=0.2) == pytest.approx(0.2)  # 800..1000: 0.2 / 1.0


def test_late_drop_of_a_flat_curve_is_about_zero_and_noise_does_not_fake_a_fall():
    flat = [(i, 1.0) for i in range(100, 1001, 100)]
    assert late_drop(flat) == pytest.approx(0.0, abs=1e-12)
    noisy = [(i, 1.0 + (0.05 if k % 2 else -0.05)) for k, i in enumerate(range(100, 1001, 100))]
    assert abs(late_drop(noisy)) < 0.05
    rising = [(i, 1.0 + 0.001 * i) for i in range(100, 1001, 100)]
    assert late_drop(rising) < 0


def test_late_drop_needs_three_points():
    assert late_drop([(900, 1.0), (1000, 0.5)]) is None
    assert late_drop([]) is None
    with pytest.raises(ValueError):
        late_drop([(1, 1.0)], fraction=0)


def test_mean_curve_and_markdown():
    a = [(100, 2.0), (200, 1.0), (300, 0.5), (400, 0.5)]
    b = [(100, 4.0), (200, 3.0), (300, 1.5), (400, 0.5), (500, 0.5)]
    mean = mean_curve([a, b])
    assert mean == [(100, 3.0), (200, 2.0), (300, 1.0), (400, 0.5)]  # iterations both logged
    text = curves_markdown({'run_a': mean, 'long': [(i, 1000.0 / i) for i in range(10, 101, 10)]},
                           columns=4)
    assert text.splitlines()[0] == '| run | iterations | 25 % | 50 % | 75 % | 100 % | late drop |'
    row = text.splitlines()[2]
    # 400 iterations: the points nearest to 100, 200, 300, 400
    assert row.startswith('| `run_a` | 400 | 3 | 2 | 1 | 0.5 |')
    assert row.endswith(f'| {100 * late_drop(mean):.0f} % |') and late_drop(mean) > 0.5
    # 100 iterations logged every 10: 25 % and 75 % fall between two points (the
    # first is taken: 20, 70), 50 % and 100 % on one
    assert text.splitlines()[3].startswith('| `long` | 100 | 50 | 20 | 14.3 | 10 |')
