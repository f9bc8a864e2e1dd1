"""tools/train.py, tools/test.py and --resume on a tiny generated dataset."""
import re
import subprocess
import sys

import pytest
import torch

TINY_CONFIG = 'tests/data/configs/tiny_fcn.py'


def _data_options(root):
    return ['--cfg-options'] + [
        f'{key}.data_root={root}' for key in
        ('train_dataloader.dataset', 'val_dataloader.dataset', 'test_dataloader.dataset')]


def _run(repo_root, *args):
    proc = subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True,
                          text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def trained(tmp_path_factory, repo_root):
    from mmovss.testing.data import make_tiny_seg_dataset
    base = tmp_path_factory.mktemp('tools')
    data = make_tiny_seg_dataset(base / 'data')
    work_dir = base / 'work'
    code, log = _run(repo_root, 'tools/train.py', TINY_CONFIG, '--work-dir', str(work_dir),
                     *_data_options(data['data_root']))
    assert code == 0, log[-3000:]
    return dict(data=data, work_dir=work_dir, log=log)


def test_train_writes_checkpoints(trained):
    work_dir = trained['work_dir']
    assert (work_dir / 'iter_3.pth').is_file()
    assert (work_dir / 'iter_6.pth').is_file()
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('iter_6.pth')
    assert 'Iter(train) [6/6]' in trained['log']


def test_checkpoint_loads_with_weights_only(trained):
    ckpt = torch.load(trained['work_dir'] / 'iter_6.pth', map_location='cpu')
    assert ckpt['meta']['iter'] == 6
    assert {'state_dict', 'optimizer', 'param_schedulers', 'message_hub'} <= set(ckpt)


def test_test_tool_prints_miou_table(trained, repo_root):
    code, log = _run(repo_root, 'tools/test.py', TINY_CONFIG,
                     str(trained['work_dir'] / 'iter_6.pth'),
                     '--work-dir', str(trained['work_dir'] / 'test'),
                     *_data_options(trained['data']['data_root']))
    assert code == 0, log[-3000:]
    assert 'Load checkpoint from' in log
    for name in trained['data']['classes']:
        assert re.search(rf'\|\s*{re.escape(name)}\s*\|\s*[\d.]+\s*\|\s*[\d.]+\s*\|', log), name
    match = re.search(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)', log)
    assert match, log[-2000:]
    assert 0.0 <= float(match.group(2)) <= 100.0


def test_resume_continues_from_saved_iteration(trained, repo_root):
    work_dir = trained['work_dir']
    code, log = _run(repo_root, 'tools/train.py', TINY_CONFIG, '--work-dir', str(work_dir),
                     '--resume', str(work_dir / 'iter_3.pth'),
                     *_data_options(trained['data']['data_root']))
    assert code == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 3' in log
    assert 'Iter(train) [4/6]' in log
    assert 'Iter(train) [1/6]' not in log


def test_resume_auto_picks_newest_checkpoint(trained, repo_root):
    work_dir = trained['work_dir']
    code, log = _run(repo_root, 'tools/train.py', TINY_CONFIG, '--work-dir', str(work_dir),
                     '--resume', '--cfg-options', 'train_cfg.max_iters=7',
                     *_data_options(trained['data']['data_root'])[1:])
    assert code == 0, log[-3000:]
    assert 'resumed epoch: 0, iter: 6' in log
    assert 'Iter(train) [7/7]' in log


@pytest.fixture(scope='module')
def test_main(repo_root):
    """``tools/test.py``'s ``main`` in this process (the command line itself is
    run above): for checks of what it reads, without an interpreter start."""
    from mmovss.testing.tools import load_tool
    return load_tool('test.py').main


def test_missing_config_names_close_matches(test_main, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    with pytest.raises(FileNotFoundError) as err:
        test_main(['tests/data/configs/tiny_fcm.py'])
    assert "Config file 'tests/data/configs/tiny_fcm.py' does not exist" in str(err.value)
    assert 'tiny_fcn.py' in str(err.value)


def test_test_tool_loads_load_from_of_the_config(trained, test_main, repo_root):
    ckpt = str(trained['work_dir'] / 'iter_6.pth')
    opts = _data_options(trained['data']['data_root'])
    work_dir = trained['work_dir'] / 'test_load_from'
    metrics = test_main([str(repo_root / TINY_CONFIG), '--work-dir', str(work_dir), *opts,
                         f'load_from={ckpt}'])
    from mmovss.testing.tools import work_dir_log
    log = work_dir_log(work_dir)
    assert f'Load checkpoint from {ckpt}' in log
    # main returns the metrics it logged
    assert re.search(rf"mIoU: {metrics['mIoU']:.4f}", log), (metrics, log[-2000:])
