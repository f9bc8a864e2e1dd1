"""tools/ovshapes/run_table.py: inputs that used to give a silently wrong table.

No training or testing runs here: the subprocess of a cell is replaced by one
that writes the metrics json mmengine would write, so every test takes about
a second.
"""
import json
import shlex
from pathlib import Path

import pytest

from mmovss.ovshapes.table import TableError, TableRunner
from mmovss.testing.tools import load_tool

FREE = 'configs/ovshapes/naclip_tiny-clip_ovshapes.py'
TRAINED = 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py'


def _runner(repo_root, work, configs, seeds=(1,), **kwargs):
    """A runner whose cells 'run' instantly (metrics json written, no subprocess)."""
    runner = TableRunner(repo_root, work, configs, seeds, num_train=2, num_val=1,
                         log=lambda msg: None, **kwargs)
    runner.ensure_world = lambda seed: runner.world_dir(seed)
    runner.ran = []

    def fake_run(cmd, log_path):
        runner.ran.append(cmd)
        if 'test.py' in cmd[1]:
            out = Path(log_path).parent / 'test' / '20260101_000000'
            out.mkdir(parents=True)
            (out / '20260101_000000.json').write_text(json.dumps(
                dict(mIoU=1.0, mIoU_seen=1.0, mIoU_unseen=1.0, hIoU=1.0)))
        return 1.0, 1.0
    runner._run = fake_run
    return runner


def _own_config(folder: Path, repo_root: Path, body: str, name='naclip_mine.py') -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"_base_ = '{repo_root / FREE}'\n{body}\n")
    return str(path)


def test_a_cell_of_a_changed_config_is_refused_not_reused(tmp_path, repo_root):
    """A config edited between two runs on one work root (or another file of the
    same name): its finished cell used to be skipped and reported for the new
    config, with a command in the table that no longer reproduces it."""
    work = tmp_path / 'work'
    config = _own_config(tmp_path / 'mine', repo_root, 'model = dict(decode_head=dict('
                         'logit_scale=40.0))')
    runner = _runner(repo_root, work, [config])
    assert runner.run() == [] and len(runner.ran) == 1
    result = json.loads((runner.cell_dir(config, 1) / 'result.json').read_text())
    assert len(result['config_sha256']) == 64
    # the same config again: the cell is kept, nothing runs
    again = _runner(repo_root, work, [config])
    assert again.run() == [] and again.ran == []
    # the config changed: refused, the old cell is left as it was
    _own_config(tmp_path / 'mine', repo_root,
                "model = dict(backbone=dict(last_block_mode='clearclip'))")
    with pytest.raises(TableError, match='another version of the config.*Delete'):
        _runner(repo_root, work, [config]).run()
    assert json.loads((runner.cell_dir(config, 1) / 'result.json').read_text()) == result
    # another file of the same name and other content on the same work root
    other = _own_config(tmp_path / 'elsewhere', repo_root, 'model = dict(decode_head=dict('
                        'logit_scale=20.0))')
    with pytest.raises(TableError, match='naclip_mine/seed1'):
        _runner(repo_root, work, [other]).run()
    # a cell of an older run (no fingerprint recorded) is kept as before
    result.pop('config_sha256')
    (runner.cell_dir(config, 1) / 'result.json').write_text(json.dumps(result))
    assert _runner(repo_root, work, [config]).run() == []


def test_repeated_seeds_and_configs_of_one_name_are_refused(tmp_path, repo_root):
    """``--seeds 1 1`` wrote '2 worlds (seeds 1, 1)' with a row of '1/2' worlds
    that no rerun could complete; two configs of one file name share a cell."""
    with pytest.raises(TableError, match=r'--seeds: 1 given more than once'):
        TableRunner(repo_root, tmp_path, [FREE], [1, 1, 2])
    with pytest.raises(TableError, match='share the name'):
        TableRunner(repo_root, tmp_path, [FREE, FREE], [1])
    copy = _own_config(tmp_path / 'mine', repo_root, '', name=Path(FREE).name)
    with pytest.raises(TableError, match='share the name'):
        TableRunner(repo_root, tmp_path, [FREE, copy], [1])


@pytest.mark.parametrize('flag,option', [
    ('--cfg-options', 'test_dataloader.dataset.data_root=/somewhere/else'),
    ('--train-cfg-options', 'train_dataloader.dataset.data_root=/somewhere/else'),
    ('--cfg-options', "test_dataloader.dataset=dict(type='OVShapesDataset')"),
])
def test_options_that_move_the_data_off_the_world_are_refused(tmp_path, repo_root, flag,
                                                              option):
    """An option setting a data root came after the table's own on the command
    line and won: the cell was tested on other data under the world's name."""
    runner_kwargs = dict(extra_options=[option]) if flag == '--cfg-options' else dict(
        train_options=[option])
    with pytest.raises(TableError, match=f'{flag} .*world'):
        _runner(repo_root, tmp_path / 'work', [FREE, TRAINED], **runner_kwargs).run()
    assert not (tmp_path / 'work' / 'cells').exists()
    # the tool ends with one line naming the option
    with pytest.raises(SystemExit, match=f'^run_table: {flag} '):
        load_tool('ovshapes/run_table.py').main(
            ['--configs', FREE, '--seeds', '1', '--work-root', str(tmp_path / 'w2'), flag,
             option])
    assert not (tmp_path / 'w2').exists()


def test_worlds_without_val_or_train_images_are_refused_before_anything_runs(tmp_path,
                                                                             repo_root):
    """``--num-val 0`` generated worlds, trained every cell, then failed every
    test; ``--num-train 0`` failed every trained cell after the worlds."""
    with pytest.raises(TableError, match='--num-val >= 1'):
        TableRunner(repo_root, tmp_path / 'work', [FREE], [1], num_val=0)
    runner = TableRunner(repo_root, tmp_path / 'work', [FREE, TRAINED], [1], num_train=0,
                         num_val=2)
    with pytest.raises(TableError, match=f'--num-train 0: {TRAINED}'):
        runner.run()
    assert not (tmp_path / 'work' / 'worlds').exists()
    # a training-free table needs no training images
    free = _runner(repo_root, tmp_path / 'free', [FREE])
    free.num_train = 0
    assert free.run() == []


def test_written_commands_are_shell_quoted(tmp_path, repo_root):
    """A ``--cfg-options`` value with a space or brackets was written unquoted:
    pasted into a shell, the command split it or globbed it."""
    option = "model.decode_head.prompt_templates=['a {} shape.', 'a {}.']"
    runner = _runner(repo_root, tmp_path / 'work', [FREE], extra_options=[option])
    assert runner.run() == []
    result = json.loads((runner.cell_dir(FREE, 1) / 'result.json').read_text())
    assert shlex.split(result['commands']['test']) == ['python', *runner.ran[0][1:]]
    assert option in shlex.split(result['commands']['test'])


def test_the_fingerprint_covers_the_files_a_config_names(tmp_path):
    """A new tiny CLIP under the same path (as when mmovss/assets is updated)
    left every finished cell counted as current; a moved checkout (same files,
    other absolute paths) must not make them stale."""
    from mmovss.ovshapes.table import config_fingerprint

    from mmengine.config import Config

    def cfg(path):
        return Config(dict(model=dict(backbone=dict(pretrained=str(path)), lr=0.1)))
    a, b = tmp_path / 'a' / 'clip.pt', tmp_path / 'b' / 'clip.pt'
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(b'weights v1')
    assert config_fingerprint(cfg(a)) == config_fingerprint(cfg(b))  # moved, same content
    before = config_fingerprint(cfg(a))
    a.write_bytes(b'weights v2 (a new tiny CLIP)')
    assert config_fingerprint(cfg(a)) != before
