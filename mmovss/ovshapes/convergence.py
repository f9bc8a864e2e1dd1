"""Loss curves of OVShapes training runs and whether they have flattened (issue #22, item 2).

mmengine's ``LoggerHook`` writes one line per logging step to
``<work-dir>/<timestamp>/vis_data/scalars.json``; the training lines carry
``iter`` and ``loss`` (the mean over the log processor's window, by default the
last 10 iterations). :func:`read_loss_curve` reads them back;
:func:`late_drop` measures how much the loss still falls at the end of the
schedule: a least-squares line through the logged points of the last
``fraction`` of training, its fall over that span relative to its end value,

    drop = (fit(i_first) - fit(i_last)) / fit(i_last),

so 0.20 means the loss was still falling by 20 % of its final value over the
second half (``fraction=0.5``); about 0 (or negative) means it had flattened.
A line, not two points, because each logged value is a noisy window mean.
"""
import json
import statistics
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

#: The fall (relative, over the last half) below which the table's caption
#: calls a curve flattened; a label only, nothing is decided by it.
CONVERGED_DROP = 0.05


class CurveError(RuntimeError):
    """A work dir without a readable loss curve."""


def find_scalars(train_dir) -> Path:
    """The newest ``<timestamp>/vis_data/scalars.json`` in a training work dir."""
    found = sorted(Path(train_dir).glob('*/vis_data/scalars.json'))
    if not found:
        raise CurveError(f'no <timestamp>/vis_data/scalars.json in {train_dir}: was it '
                         'trained with LocalVisBackend (configs/_base_/default_runtime.py)?')
    return found[-1]


def read_loss_curve(train_dir, key: str = 'loss') -> List[Tuple[int, float]]:
    """``[(iteration, loss), ...]`` of the training lines of a work dir, in order.

    Lines without ``key`` (validation metrics) are skipped; if a run was resumed
    and logged an iteration twice, the later value is kept.
    """
    path = find_scalars(train_dir)
    points = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise CurveError(f'{path}, line {n}: not json ({err})') from err
        if key in row and 'iter' in row:
            points[int(row['iter'])] = float(row[key])
    if not points:
        raise CurveError(f'{path} has no training line with "{key}" and "iter"')
    return sorted(points.items())


def late_drop(curve: Sequence[Tuple[int, float]], fraction: float = 0.5) -> Optional[float]:
    """Relative fall of the fitted loss over the last ``fraction`` of the run.

    Args:
        curve: ``(iteration, loss)`` points in order (see :func:`read_loss_curve`).
        fraction: Part of the run (by iteration) the line is fitted to.

    Returns:
        ``(fit(first) - fit(last)) / fit(last)`` over the points with
        ``iter >= (1 - fraction) * last_iter``; None with fewer than 3 such
        points (too few to tell) or a non-positive fitted end value.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    if not curve:
        return None
    last_iter = curve[-1][0]
    tail = [(i, v) for i, v in curve if i >= (1 - fraction) * last_iter]
    if len(tail) < 3:
        return None
    xs = [float(i) for i, _ in tail]
    slope, intercept = statistics.linear_regression(xs, [float(v) for _, v in tail])
    end = intercept + slope * xs[-1]
    if end <= 0:
        return None
    return -slope * (xs[-1] - xs[0]) / end


def curves_markdown(curves: dict, columns: int = 10) -> str:
    """A markdown table of loss curves, one row per run, at fixed fractions of each run.

    Runs of different lengths share the columns: column ``k`` of ``columns``
    holds the logged point nearest to ``k / columns`` of the run's last
    iteration.

    Args:
        curves: ``{name: [(iteration, loss), ...]}``; names with several runs
            should be averaged by the caller.
        columns: Number of fractions shown.
    """
    fractions = [k / columns for k in range(1, columns + 1)]
    lines = ['| run | iterations | ' + ' | '.join(f'{100 * f:.0f} %' for f in fractions)
             + ' | late drop |', '| --- |' + ' --- |' * (columns + 2)]
    for name, curve in curves.items():
        last = curve[-1][0]
        cells = []
        for f in fractions:
            _, v = min(curve, key=lambda p: abs(p[0] - f * last))
            cells.append(f'{v:.3g}')
        drop = late_drop(curve)
        lines.append(f'| `{name}` | {last} | ' + ' | '.join(cells) + ' | '
                     + ('-' if drop is None else f'{100 * drop:.0f} %') + ' |')
    return '\n'.join(lines)
