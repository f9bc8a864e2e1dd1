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


def _runner(repo_root, work, configs, seeds=(1,), num_train=2, **kwargs):
    """A runner whose cells 'run' instantly (metrics json written, no subprocess)."""
    runner = TableRunner(repo_root, work, configs, seeds, num_train=num_train, num_val=1,
                         log=lambda msg: None, **kwargs)
    runner.ensure_world = lambda seed: runner.world_dir(seed)
    runner.ran = []

    def fake_run(cmd, log_path):
        runner.ran.append(cmd)
        return _instant_cell(cmd, log_path)
    runner._run = fake_run
    return runner


def _instant_cell(cmd, log_path):
    """What a cell's run leaves, at once: a test run writes its metrics json."""
    if 'test.py' in cmd[1]:
        out = Path(log_path).parent / 'test' / '20260101_000000'
        out.mkdir(parents=True)
        (out / '20260101_000000.json').write_text(json.dumps(
            dict(mIoU=1.0, mIoU_seen=1.0, mIoU_unseen=1.0, hIoU=1.0)))
    return 1.0, 1.0


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


def test_a_cell_of_another_file_content_is_refused_naming_the_file(tmp_path, repo_root,
                                                                   monkeypatch):
    """The fingerprint took a file the config names by its content only when
    the tool was started where the path resolves: a relative path (the runs
    start from the repository) was checked from the current directory, and the
    files named by ``--cfg-options`` were not checked at all. A retrained
    tiny CLIP under the same path then left the old cells counted as current,
    to be mixed with new ones."""
    repo = tmp_path / 'repo'  # the runs are faked: only the files matter
    (repo / 'weights').mkdir(parents=True)
    clip, text = repo / 'weights' / 'clip.pt', repo / 'weights' / 'text.pt'
    clip.write_bytes(b'tiny CLIP v1')
    text.write_bytes(b'text tower v1')
    config = _own_config(tmp_path / 'mine', repo_root,
                         "model = dict(backbone=dict(pretrained='weights/clip.pt'))")
    monkeypatch.chdir(tmp_path)  # started elsewhere than the repository
    option = 'model.text_encoder.pretrained=weights/text.pt'
    runner = _runner(repo, tmp_path / 'work', [config], extra_options=[option])
    assert runner.run() == [] and len(runner.ran) == 1
    result = json.loads((runner.cell_dir(config, 1) / 'result.json').read_text())
    assert set(result['config_files']) >= {'weights/clip.pt', 'weights/text.pt'}
    again = _runner(repo, tmp_path / 'work', [config], extra_options=[option])
    assert again.run() == [] and again.ran == []  # unchanged: kept
    for path in (clip, text):
        before = path.read_bytes()
        path.write_bytes(before + b' retrained')
        with pytest.raises(TableError, match=r'naclip_mine/seed1: finished with another '
                           rf'version of the config \(changed since: weights/{path.name}\)'
                           r'.*Delete these cell folders'):
            _runner(repo, tmp_path / 'work', [config], extra_options=[option]).run()
        path.write_bytes(before)
    assert json.loads((runner.cell_dir(config, 1) / 'result.json').read_text()) == result
    # options that name no file leave the fingerprint as before (cells of
    # earlier runs stay current)
    plain = _runner(repo, tmp_path / 'w2', [TRAINED])
    sized = _runner(repo, tmp_path / 'w2', [TRAINED],
                    train_options=['train_dataloader.batch_size=2'])
    assert (plain.config_infos([repo_root / TRAINED])[repo_root / TRAINED]['fingerprint']
            == sized.config_infos([repo_root / TRAINED])[repo_root / TRAINED]['fingerprint'])


def test_a_world_of_other_sizes_is_refused_not_regenerated(tmp_path, repo_root):
    """The val images of a seed depend on --num-train as well: a world of other
    sizes is another world. With the work root's state file gone, a rerun with
    another --num-train regenerated the worlds and reported the cells finished
    on the old ones together with new ones."""
    work = tmp_path / 'work'

    def runner(num_train, configs=(FREE,)):
        r = _runner(repo_root, work, list(configs), num_train=num_train)
        del r.ensure_world  # the real one: a world of 2 (3) train + 1 val images
        return r
    assert runner(2).run() == []
    world = work / 'worlds' / 'seed1'
    files = {p: p.read_bytes() for p in world.rglob('*') if p.is_file()}
    result = json.loads((work / 'cells' / Path(FREE).stem / 'seed1' / 'result.json')
                        .read_text())
    assert result['world'] == dict(seed=1, num_train=2, num_val=1)
    # the settings of the work root name the option that differs
    with pytest.raises(TableError, match=r'other settings: --num-train 2 \(this run: 3\)\. '
                       r'.*val images depend on --num-train.*another --work-root'):
        runner(3).run()
    (work / 'state.json').unlink()
    # its finished cell was run on the other world
    with pytest.raises(TableError, match=r'seed1: finished on another world \(--num-train 2 '
                       r'--num-val 1; this run: --num-train 3 --num-val 1\)'):
        runner(3, (FREE, TRAINED)).run()
    # a cell of an older run (no world recorded): the world on disk is refused
    result.pop('world')
    (work / 'cells' / Path(FREE).stem / 'seed1' / 'result.json').write_text(
        json.dumps(result))
    with pytest.raises(TableError, match=r'worlds/seed1 was generated with --num-train 2 '
                       r'--num-val 1, this run asks for --num-train 3 --num-val 1'):
        runner(3, (FREE, TRAINED)).run()
    assert {p: p.read_bytes() for p in world.rglob('*') if p.is_file()} == files
    assert not (work / 'cells' / Path(TRAINED).stem / 'seed1').exists()


@pytest.fixture
def fast_tool(monkeypatch):
    """run_table.py's main() with cells that 'run' instantly, as in :func:`_runner`."""
    monkeypatch.setattr(TableRunner, '_run', lambda self, cmd, log_path: _instant_cell(
        cmd, log_path))
    monkeypatch.setattr(TableRunner, 'ensure_world', lambda self, seed: self.world_dir(seed))
    tool = load_tool('ovshapes/run_table.py')
    return lambda *args: tool.main(['--num-train', '2', '--num-val', '1', *args])


def test_a_run_of_other_configs_keeps_the_rows_of_earlier_runs_in_the_table(
        tmp_path, repo_root, fast_tool, capsys):
    """A second run on the work root with other --configs (to add or redo a row,
    as in the README) rewrote table.md with its own rows only."""
    work = tmp_path / 'work'
    mine = _own_config(tmp_path / 'mine', repo_root, 'model = dict(decode_head=dict('
                       'logit_scale=40.0))')
    fast_tool('--configs', FREE, mine, '--seeds', '1', '2', '--work-root', str(work))
    fast_tool('--configs', TRAINED, '--seeds', '1', '3', '--work-root', str(work))
    log = capsys.readouterr().err
    assert ('besides this run, 2 config(s) (naclip_mine, naclip_tiny-clip_ovshapes) and '
            'world seed(s) (2) finished by earlier runs') in log
    text = (work / 'table.md').read_text()
    assert 'OVShapes, 3 worlds (seeds 1, 2, 3;' in text
    rows = {line.split('|')[1].strip(' `'): line.split('|')[3].strip()
            for line in text.splitlines() if line.startswith('| `')}
    assert rows == {Path(TRAINED).stem: '2/3', Path(FREE).stem: '2/3', 'naclip_mine': '2/3'}
    # --only-this-run: this run's grid alone (into another file)
    fast_tool('--configs', TRAINED, '--seeds', '1', '3', '--work-root', str(work),
              '--out', str(tmp_path / 'only.md'), '--only-this-run')
    only = (tmp_path / 'only.md').read_text()
    assert 'naclip' not in only and '2 worlds (seeds 1, 3;' in only
    # a cell of an earlier run whose config changed since is left out, said so
    _own_config(tmp_path / 'mine', repo_root, 'model = dict(decode_head=dict('
                'logit_scale=20.0))')
    fast_tool('--configs', TRAINED, '--seeds', '1', '3', '--work-root', str(work))
    log = capsys.readouterr().err
    assert 'table: left out' in log and 'naclip_mine/seed1 (finished with another' in log
    text = (work / 'table.md').read_text()
    assert 'Left out: ' in text and '`naclip_mine`' not in text
    assert f'| `{Path(FREE).stem}` |' in text
