"""Tools that write one result file (``--json``, a report folder, the table's
``--out``) check it before they run: never an input, never inside a dataset,
an existing file only with ``--overwrite`` (run_table: or its own table).

Each test fails if the tool writes first (the file's bytes change), runs the
measurement before refusing (the measure callback or the run is reached), or
refuses what it should accept."""
import json
import re

import pytest

from mmovss.io import UnsafeOutputError, check_output_file
from mmovss.testing.tools import REPO_ROOT, load_tool

DEMO_CONFIG = str(REPO_ROOT / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py')


def test_check_output_file_rules(tmp_path):
    data = tmp_path / 'data'
    (data / 'img').mkdir(parents=True)
    config = tmp_path / 'config.py'
    config.write_text('x = 1\n')
    check_output_file(str(tmp_path / 'new' / 'r.json'))  # new file, new folder: fine
    with pytest.raises(UnsafeOutputError, match="is a folder; name a file"):
        check_output_file(str(data))
    with pytest.raises(UnsafeOutputError, match='protected folder'):
        check_output_file(str(data / 'img' / 'r.json'), overwrite=True,
                          protected_dirs=[str(data)])
    existing = tmp_path / 'old.json'
    existing.write_text('{}')
    with pytest.raises(UnsafeOutputError, match=r"old.json' exists .*--overwrite"):
        check_output_file(str(existing))
    check_output_file(str(existing), overwrite=True)
    (tmp_path / 'alias.py').symlink_to(config)  # another path, the same file
    with pytest.raises(UnsafeOutputError, match='would overwrite an input'):
        check_output_file(str(tmp_path / 'alias.py'), overwrite=True,
                          protected_files=[str(config)])
    assert config.read_text() == 'x = 1\n' and existing.read_text() == '{}'


def test_side_by_side_json_is_checked_before_the_measurement(tmp_path, capsys):
    from mmovss.evaluation.side_by_side import run_side_by_side_tool, side_by_side_parser
    calls = []

    def measure(cfg, args):
        calls.append(args.json)
        return {'model': {'mIoU': 1.0}}

    def run(*extra):
        return run_side_by_side_tool(side_by_side_parser('test'),
                                     [DEMO_CONFIG, str(ckpt), *extra], measure, str)

    ckpt = tmp_path / 'iter_10.pth'
    ckpt.write_bytes(b'weights')
    old = tmp_path / 'out.json'
    old.write_text('{"world": 1}')

    def refused(*extra):
        """stderr of a run refused as a user error: exit code 2, as
        tools/test.py and run_tool."""
        with pytest.raises(SystemExit) as stop:
            run(*extra)
        assert stop.value.code == 2
        return capsys.readouterr().err

    assert re.match(r"error: .*out.json' exists .*--overwrite", refused('--json', str(old)))
    assert 'would overwrite an input' in refused('--json', str(ckpt), '--overwrite')
    world = tmp_path / 'world'
    world.mkdir()
    assert 'protected folder' in refused('--json', str(world / 'r.json'), '--cfg-options',
                                         f'test_dataloader.dataset.data_root={world}')
    def refused_measure(cfg, args):
        raise ValueError('the model cannot be measured')

    for argv, step in (([DEMO_CONFIG, str(tmp_path / 'none.pth')], measure),
                       ([DEMO_CONFIG, str(ckpt)], refused_measure)):
        with pytest.raises(SystemExit) as stop:
            run_side_by_side_tool(side_by_side_parser('test'), argv, step, str)
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error: checkpoint '" in err and 'error: the model cannot be measured' in err
    assert calls == [] and old.read_text() == '{"world": 1}'
    assert ckpt.read_bytes() == b'weights'
    run('--json', str(old), '--overwrite')
    run('--json', str(tmp_path / 'new' / 'r.json'))  # its folder is made
    assert json.loads(old.read_text()) == {'model': {'mIoU': 1.0}}
    assert json.loads((tmp_path / 'new' / 'r.json').read_text()) == {'model': {'mIoU': 1.0}}
    assert len(calls) == 2


def test_benchmark_json_is_checked_before_the_run(tmp_path, monkeypatch):
    tool = load_tool('analysis_tools/benchmark.py')
    monkeypatch.setattr(tool, 'benchmark_segmentor',
                        lambda *a, **k: pytest.fail('ran before checking --json'))
    old = tmp_path / 'san.json'
    old.write_text('{"earlier": true}')
    with pytest.raises(tool.BenchmarkError, match=r"san.json' exists .*--overwrite"):
        tool.main([DEMO_CONFIG, '--json', str(old)])
    with pytest.raises(tool.BenchmarkError, match='would overwrite an input'):
        tool.main([DEMO_CONFIG, '--json', DEMO_CONFIG, '--overwrite'])
    assert old.read_text() == '{"earlier": true}'
    assert tool.command_line([DEMO_CONFIG, '--json', 'a.json', '--overwrite']).endswith(
        DEMO_CONFIG)  # output options are not part of the reproducing command


def test_vocabulary_report_out_is_checked_before_the_run(tmp_path, monkeypatch):
    tool = load_tool('analysis_tools/vocabulary_report.py')
    monkeypatch.setattr(tool, 'run_vocabulary_report',
                        lambda *a, **k: pytest.fail('ran before checking --out'))
    out = tmp_path / 'report'
    out.mkdir()
    (out / 'report.md').write_text('last week')
    with pytest.raises(SystemExit, match="report' is not empty"):
        tool.main([DEMO_CONFIG, '--out', str(out)])
    world = tmp_path / 'world'
    world.mkdir()
    with pytest.raises(SystemExit, match='protected folder'):
        tool.main([DEMO_CONFIG, '--out', str(world / 'vocab'), '--overwrite', '--cfg-options',
                   f'test_dataloader.dataset.data_root={world}'])
    assert (out / 'report.md').read_text() == 'last week'
    assert not (world / 'vocab').exists()


def test_run_table_refuses_a_foreign_out_file_before_any_run(tmp_path):
    from mmovss.ovshapes.table import TABLE_HEADER, check_table_output
    tool = load_tool('ovshapes/run_table.py')
    readme = tmp_path / 'README.md'
    readme.write_text('# OVShapes\nhand-written notes\n')
    work = tmp_path / 'work'
    with pytest.raises(SystemExit, match=r"README.md' exists .*--overwrite"):
        tool.main(['--configs', DEMO_CONFIG, '--seeds', '1', '--work-root', str(work),
                   '--out', str(readme)])
    assert readme.read_text() == '# OVShapes\nhand-written notes\n'
    assert not work.exists()  # refused before the world was generated
    own = tmp_path / 'table.md'
    own.write_text(f'OVShapes, 1 worlds\n\n{TABLE_HEADER}\n')
    check_table_output(str(own), [DEMO_CONFIG])  # its own table: a rerun refreshes it
    check_table_output(str(readme), [DEMO_CONFIG], overwrite=True)
    with pytest.raises(UnsafeOutputError, match='would overwrite an input'):
        check_table_output(DEMO_CONFIG, [DEMO_CONFIG], overwrite=True)
