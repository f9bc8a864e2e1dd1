"""tools/ovshapes/run_table.py: the OVShapes table over several worlds (issue #22).

Two tiny worlds (8 train / 4 val images), one training-free config and the
trained dense-refine config at 5 iterations (batch 2). The expected mean/std
are computed here from the metrics json files that mmengine wrote in each
cell's test work dir, independently of the tool's own parsing.
"""
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmovss.ovshapes.table import summarize, train_options

FREE = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
TRAINED = 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py'
SEEDS = (1, 2)
ITERS = 5


def _run_tool(repo_root, work, *extra):
    cmd = [sys.executable, 'tools/ovshapes/run_table.py', '--configs', FREE, TRAINED,
           '--seeds', *map(str, SEEDS), '--iters', str(ITERS), '--num-train', '8',
           '--num-val', '4', '--work-root', str(work), '--out', str(work / 'table.md'),
           '--train-cfg-options', 'train_dataloader.batch_size=2',
           'default_hooks.logger.interval=1', *extra]
    return subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=900)


def _cell(work, config, seed):
    return work / 'cells' / Path(config).stem / f'seed{seed}'


def _mmengine_metrics(work, config, seed):
    found = [p for p in (_cell(work, config, seed) / 'test').glob('*/*.json')
             if p.stem == p.parent.name]
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def _table_rows(text):
    """The rows of the results table (not of the loss-curve table below it)."""
    rows = {}
    for line in text.split('\nTraining loss')[0].splitlines():
        if line.startswith('| `'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            rows[cells[0].strip('`')] = cells[1:]
    return rows


@pytest.fixture(scope='module')
def table(tmp_path_factory, repo_root):
    work = tmp_path_factory.mktemp('ovshapes_table')
    proc = _run_tool(repo_root, work, '--jobs', '2', '--threads', '1')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def test_jobs_run_cells_at_the_same_time(table):
    results = [json.loads(p.read_text()) for p in (table / 'cells').glob('*/seed*/result.json')]
    assert len(results) == 2 * len(SEEDS) and all(r['threads'] == 1 for r in results)
    spans = sorted((r['started'], r['finished']) for r in results)
    # with --jobs 2 some cell starts before the previous one has finished
    assert any(nxt[0] < cur[1] for cur, nxt in zip(spans, spans[1:])), spans


def _check_table(work):
    rows = _table_rows((work / 'table.md').read_text())
    assert set(rows) == {Path(FREE).stem, Path(TRAINED).stem}
    for config in (FREE, TRAINED):
        row = rows[Path(config).stem]
        assert row[1] == f'{len(SEEDS)}/{len(SEEDS)}'
        per_seed = [_mmengine_metrics(work, config, s) for s in SEEDS]
        for col, key in zip(row[2:5], ('mIoU_seen', 'mIoU_unseen', 'hIoU')):
            values = [float(m[key]) for m in per_seed]
            mean, std = statistics.mean(values), statistics.stdev(values)
            got_mean, got_std = (float(v) for v in col.split('+-'))
            assert got_mean == pytest.approx(mean, abs=0.006), (config, key, col, values)
            assert got_std == pytest.approx(std, abs=0.006), (config, key, col, values)
    assert rows[Path(FREE).stem][0] == 'none' and rows[Path(FREE).stem][5] == '-'
    assert rows[Path(TRAINED).stem][0] == 'yes'
    assert float(rows[Path(TRAINED).stem][5].split('+-')[0]) > 0
    assert rows[Path(FREE).stem][6] == rows[Path(FREE).stem][7] == '-'
    # training CPU time: the mean of the cells' own records, each within its wall time
    # (one thread; the data loader runs in the training process)
    runs = [json.loads((_cell(work, TRAINED, s) / 'result.json').read_text()) for s in SEEDS]
    assert all(0 < r['train_cpu_s'] <= 1.05 * r['train_time_s'] for r in runs), runs
    got_cpu = float(rows[Path(TRAINED).stem][6].split('+-')[0])
    assert got_cpu == pytest.approx(statistics.mean(r['train_cpu_s'] for r in runs), abs=0.51)
    # loss fall over the last half: a line fitted here with numpy to the loss
    # points mmengine logged (iterations 3..5 of 5), relative to its end value
    drops = []
    for seed in SEEDS:
        scalars = list((_cell(work, TRAINED, seed) / 'train').glob('*/vis_data/scalars.json'))
        assert len(scalars) == 1, scalars
        points = [json.loads(line) for line in scalars[0].read_text().splitlines()]
        points = [(p['iter'], p['loss']) for p in points if 'loss' in p]
        assert [i for i, _ in points] == list(range(1, ITERS + 1))
        xs, ys = np.array(points[2:]).T
        slope, icpt = np.polyfit(xs, ys, 1)
        drops.append(100 * -slope * (xs[-1] - xs[0]) / (slope * xs[-1] + icpt))
    got_mean, got_std = (float(v) for v in rows[Path(TRAINED).stem][7].split('+-'))
    assert got_mean == pytest.approx(statistics.mean(drops), abs=0.51), (drops, got_mean)
    assert got_std == pytest.approx(statistics.stdev(drops), abs=0.51), (drops, got_std)
    text = (work / 'table.md').read_text()
    assert f'| `{Path(TRAINED).stem}` | ' in text.split('Training loss')[1]  # the curves
    for seed in SEEDS:  # the exact commands of every cell
        result = json.loads((_cell(work, TRAINED, seed) / 'result.json').read_text())
        assert result['commands']['train'] in text and result['commands']['test'] in text
        assert f'train_cfg.max_iters={ITERS}' in result['commands']['train']
        assert 'make_dataset.py --out' in text and f'--seed {seed}' in text


def test_table_has_mean_and_std_of_the_per_world_metrics(table):
    _check_table(table)
    for seed in SEEDS:
        assert (_cell(table, TRAINED, seed) / 'train' / f'iter_{ITERS}.pth').is_file()
        assert not (_cell(table, FREE, seed) / 'train').exists()  # training-free: test only
    state = json.loads((table / 'state.json').read_text())
    assert len(state['cells']) == len(SEEDS) * 2


def test_rerun_skips_finished_cells_and_redoes_an_interrupted_one(table, repo_root):
    ckpts = [_cell(table, TRAINED, s) / 'train' / f'iter_{ITERS}.pth' for s in SEEDS]
    mtimes = [p.stat().st_mtime_ns for p in ckpts]
    results = sorted(table.glob('cells/*/*/result.json'))
    result_mtimes = [p.stat().st_mtime_ns for p in results]

    proc = _run_tool(repo_root, table)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count('finished earlier, skipped') == 4, proc.stderr
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes
    assert [p.stat().st_mtime_ns for p in results] == result_mtimes

    # An interrupted cell: its result was never written (here: deleted).
    redo = _cell(table, FREE, 2)
    (redo / 'result.json').unlink()
    proc = _run_tool(repo_root, table)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count('finished earlier, skipped') == 3, proc.stderr
    assert f'{Path(FREE).stem} seed 2: done' in proc.stderr
    assert (redo / 'result.json').is_file()
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes
    _check_table(table)


def test_other_settings_on_the_same_work_root_are_refused(table, repo_root):
    proc = _run_tool(repo_root, table, '--cfg-options', 'model.test_cfg.mode=whole')
    assert proc.returncode != 0
    assert 'other settings' in proc.stderr and '--work-root' in proc.stderr


def test_short_schedule_scales_iteration_schedulers():
    info = dict(max_iters=1000, schedulers=[dict(begin=0, end=50, by_epoch=False),
                                            dict(begin=50, end=1000, by_epoch=False)])
    opts = train_options(info, 100)
    assert 'train_cfg.max_iters=100' in opts and 'train_cfg.val_begin=101' in opts
    assert 'param_scheduler.0.end=5' in opts and 'param_scheduler.1.begin=5' in opts
    assert 'param_scheduler.1.end=100' in opts
    assert not any(o.startswith('param_scheduler') for o in train_options(info, None))


def test_summarize_is_mean_and_sample_std():
    assert summarize([1.0, 3.0]) == (2.0, pytest.approx(2 ** 0.5))
    assert summarize([4.0]) == (4.0, 0.0)


def test_a_row_of_one_world_shows_no_spread(tmp_path):
    from mmovss.ovshapes.table import TableRunner
    runner = TableRunner(tmp_path, tmp_path / 'work', [TRAINED], [1, 2])
    cell = runner.cell_dir(TRAINED, 1)
    cell.mkdir(parents=True)
    metrics = dict(mIoU_seen=50.0, mIoU_unseen=25.0, hIoU=33.33)
    (cell / 'result.json').write_text(json.dumps(dict(
        config=TRAINED, seed=1, trained=True, metrics=metrics, train_time_s=200.0,
        commands={'train': 'python tools/train.py x', 'test': 'python tools/test.py x'})))
    row = _table_rows(runner.render())[Path(TRAINED).stem]
    # no CPU time recorded (a cell of an older run), no train dir: no curve
    assert row[1:8] == ['1/2', '50.00', '25.00', '33.33', '200', '-', '-']


def test_cpu_time_is_the_one_childs_and_the_exit_code_is_kept():
    """``wait_with_cpu_time``: the CPU time of that subprocess only (it busies
    the CPU about 0.4 s, then sleeps 0.6 s), and its exit code."""
    from mmovss.ovshapes.table import wait_with_cpu_time
    code = ('import time\nend = time.process_time() + 0.4\n'
            'while time.process_time() < end: pass\ntime.sleep(0.6)\nraise SystemExit(3)')
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, '-c', code])
    returncode, cpu = wait_with_cpu_time(proc)
    wall = time.perf_counter() - start
    assert returncode == 3 and proc.returncode == 3
    assert 0.4 <= cpu < wall - 0.5, (cpu, wall)  # the sleep is not CPU time


def test_every_dataset_root_of_a_wrapped_training_set_is_redirected(repo_root):
    from mmovss.ovshapes.table import config_info
    info = config_info('configs/ovshapes/openseg_tiny-clip_1k_ovshapes-seen-captions.py',
                       repo_root)
    assert info['trained']
    assert {'train_dataloader.dataset.datasets.0.data_root',
            'train_dataloader.dataset.datasets.1.data_root',
            'test_dataloader.dataset.data_root'} <= set(info['train_roots'])
    assert 'train_dataloader.dataset.data_root' not in info['train_roots']
    free = config_info(FREE, repo_root)
    assert not free['trained'] and not any(k.startswith('train_') for k in free['test_roots'])


def test_every_training_free_config_is_only_tested(repo_root):
    """The per-method training-free rows (MaskCLIP ... Trident) are tested
    without training, every recipe with a schedule field (``_1k_``, the naming
    rule of docs/configs.md) is trained."""
    from mmovss.models.segmentors import TrainingFreeSegmentor
    from mmovss.ovshapes.table import config_info, default_configs

    from mmengine.config import Config
    from mmseg.registry import MODELS
    free_methods = set()
    for config in default_configs(repo_root):
        info = config_info(config, repo_root)
        has_schedule = len(Path(config).stem.split('_')) == 4
        assert info['trained'] == has_schedule, config
        segmentor = MODELS.get(Config.fromfile(str(repo_root / config)).model.type)
        if issubclass(segmentor, TrainingFreeSegmentor):
            assert not info['trained'], config
            free_methods.add(Path(config).stem.split('_')[0])
    assert {'maskclip', 'sclip', 'clearclip', 'naclip', 'naclip-pamr', 'resclip', 'scclip',
            'proxyclip', 'corrclip', 'trident'} <= free_methods


def test_state_lists_the_cells_of_every_run_on_the_work_root(tmp_path):
    """Two runs of different configs on one work root: the second run's state
    keeps the first run's cells (it used to list its own grid only)."""
    from mmovss.ovshapes.table import TableRunner
    work = tmp_path / 'work'
    for config, seed in ((TRAINED, 1), (FREE, 2)):
        cell = TableRunner(tmp_path, work, [config], [seed]).cell_dir(config, seed)
        cell.mkdir(parents=True)
        (cell / 'result.json').write_text(json.dumps(dict(config=config, seed=seed)))
    TableRunner(tmp_path, work, [FREE], [2])._write_state()  # the second run
    state = json.loads((work / 'state.json').read_text())
    assert sorted(state['cells']) == [f'{Path(FREE).stem}/seed2', f'{Path(TRAINED).stem}/seed1']
    assert state['cells'][f'{Path(TRAINED).stem}/seed1']['seed'] == 1
    assert not list(work.glob('*.tmp'))


def test_configs_that_are_not_one_cell_stay_out_of_the_default_table(repo_root):
    """OVSeg's prompt-tuning run and the config testing the merged checkpoint
    are not train + test cells: run_table.py must not train them."""
    from mmovss.ovshapes.table import NOT_A_CELL, default_configs
    configs = default_configs(repo_root)
    folder = sorted(p.name for p in (repo_root / 'configs' / 'ovshapes').glob('*.py'))
    left_out = sorted(set(folder) - {Path(c).name for c in configs})
    assert left_out == ['ovseg-mpt_tiny-clip_3k_ovshapes-seen.py',
                        'ovseg_tiny-clip_mask-prompt-tuning_ovshapes-regions.py']
    for name in left_out:
        assert NOT_A_CELL in (repo_root / 'configs' / 'ovshapes' / name).read_text()
    assert 'configs/ovshapes/ovseg_tiny-clip_3k_ovshapes-seen.py' in configs


def test_a_cell_finished_or_held_by_another_run_is_never_wiped(tmp_path, monkeypatch):
    """Two runs on one work root listing the same cell (found by a session:
    the second run wiped a cell the first had just finished): a cell whose
    result appeared meanwhile, or whose lock a live process holds, is skipped;
    a lock whose process is gone is taken over."""
    from mmovss.ovshapes.table import TableRunner
    runner = TableRunner(tmp_path, tmp_path / 'work', [FREE], [1, 2, 3])
    monkeypatch.setattr(runner, 'ensure_world', lambda seed: None)
    ran = []
    monkeypatch.setattr(runner, 'run_cell', lambda config, seed, info: ran.append(seed) or dict(
        metrics=dict(mIoU_seen=1.0, mIoU_unseen=1.0, hIoU=1.0)))
    monkeypatch.setattr('mmovss.ovshapes.table.config_info',
                        lambda config, root: dict(trained=False))
    # seed 1: another live process holds the lock (this test's own pid)
    lock1 = runner._lock_path(FREE, 1)
    lock1.parent.mkdir(parents=True)
    lock1.write_text(str(__import__('os').getpid()))
    # seed 2: its result appears after the run listed it as pending
    real_claim = runner.claim_cell

    def claim(config, seed):
        if seed == 2:
            cell = runner.cell_dir(config, seed)
            cell.mkdir(parents=True, exist_ok=True)
            (cell / 'result.json').write_text('{}')
        return real_claim(config, seed)
    monkeypatch.setattr(runner, 'claim_cell', claim)
    # seed 3: a stale lock of a process that has exited
    done = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True)
    runner._lock_path(FREE, 3).write_text(done.stdout.strip())
    logs = []
    runner.log = logs.append
    assert runner.run() == []
    assert ran == [3]
    text = '\n'.join(logs)
    assert 'seed 1: being run by process' in text
    assert 'seed 2: finished by another run meanwhile, skipped' in text
    assert lock1.exists()  # the other process's lock is left alone
    assert not runner._lock_path(FREE, 3).exists()  # released after the run
    assert (runner.cell_dir(FREE, 2) / 'result.json').read_text() == '{}'
