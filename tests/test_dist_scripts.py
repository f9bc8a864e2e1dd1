"""tools/dist_test.sh and tools/dist_train.sh as documented, on the CPU (gloo).

* A training-free method (no checkpoint, no trainable parameter) is tested
  by several processes with the single process's numbers.
* A missing or wrong process count and a port in use end in one line that
  names the fix, before torchrun starts.
"""
import os
import re
import socket
import subprocess

import pytest

CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('dist_world')
    write_world(root, seed=3, num_train=0, num_val=3)
    return root


def _options(root):
    return ['--cfg-options', f'test_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}']


def _miou(log):
    found = re.findall(r'Iter\(test\).*?\bmIoU: ([\d.]+)', log)
    assert found, log[-3000:]
    return float(found[-1])


def _bash(repo_root, args, **env):
    proc = subprocess.run(['bash', *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1', **env))
    return proc.returncode, proc.stdout + proc.stderr


def test_dist_test_runs_a_training_free_method(tmp_path, repo_root, world):
    # before: every rank failed in DDP ("DistributedDataParallel is not needed
    # when a module doesn't have any parameter that requires a gradient")
    from mmovss.testing.tools import load_tool, work_dir_log
    load_tool('test.py').main([str(repo_root / CONFIG), '--work-dir', str(tmp_path / 'one'),
                               *_options(world)])
    code, log = _bash(repo_root, ['tools/dist_test.sh', CONFIG, '', '2', '--work-dir',
                                  str(tmp_path / 'two'), *_options(world)])
    assert code == 0, log[-3000:]
    assert _miou(log) == _miou(work_dir_log(tmp_path / 'one'))


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh'])
def test_process_count_and_busy_port_are_one_line(repo_root, script):
    # before: torchrun's tracebacks ("Unsupported nproc_per_node value: ",
    # "DistNetworkError: … EADDRINUSE")
    head = ['tools/' + script, CONFIG] + ([''] if script == 'dist_test.sh' else [])
    code, out = _bash(repo_root, head)
    assert code == 2 and out.startswith('error: usage: bash tools/' + script), out
    assert 'Traceback' not in out and len(out.strip().splitlines()) == 1
    code, out = _bash(repo_root, [*head, 'two'])
    assert code == 2 and "got 'two'" in out, out
    with socket.socket() as busy:
        busy.bind(('', 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = _bash(repo_root, [*head, '2'], PORT=str(port))
    assert code == 2, out
    assert out.strip() == (f'error: PORT={port} is in use (another distributed run?): set PORT to '
                           f'a free port, e.g. PORT={port + 1} bash tools/{script} ...')


@pytest.mark.parametrize('tool,launcher,variable', [('test.py', 'pytorch', 'RANK'),
                                                     ('train.py', 'slurm', 'SLURM_PROCID')])
def test_launcher_without_its_environment_names_the_starter(repo_root, monkeypatch, tmp_path,
                                                            tool, launcher, variable):
    # before: KeyError: 'RANK' (pytorch) / 'SLURM_PROCID' (slurm) from MMEngine
    from mmovss.testing.tools import load_tool
    monkeypatch.delenv(variable, raising=False)
    config = (CONFIG if tool == 'test.py'
              else 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py')
    with pytest.raises(ValueError, match=f'--launcher {launcher} needs the environment .*{variable}'
                       r'.*leave --launcher out'):
        load_tool(tool).main([str(repo_root / config), '--launcher', launcher,
                              '--work-dir', str(tmp_path / 'w')])


@pytest.mark.parametrize('script, args', [
    ('slurm_test.sh', ['part', 'job', 'my configs/a b.py', '', '--work-dir', 'w']),
    ('slurm_train.sh', ['part', 'job', 'my configs/a b.py', 'work dir/x']),
])
def test_slurm_scripts_pass_paths_with_spaces_whole(repo_root, tmp_path, script, args):
    """CONFIG (and WORK_DIR) were unquoted: a path with a space reached the
    tool as two arguments. A stand-in srun records what it would start."""
    srun = tmp_path / 'bin' / 'srun'
    srun.parent.mkdir()
    record = tmp_path / 'argv'
    srun.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    srun.chmod(0o755)
    env = dict(os.environ, PATH=f'{srun.parent}:{os.environ["PATH"]}')
    subprocess.run(['bash', str(repo_root / 'tools' / script), *args], env=env, check=True,
                   capture_output=True)
    argv = record.read_text().splitlines()
    tool = argv.index(next(a for a in argv if a.endswith(('/test.py', '/train.py'))))
    assert argv[tool + 1] == 'my configs/a b.py'
    if script == 'slurm_test.sh':  # "" for no checkpoint: nothing in its place
        assert argv[tool + 2:] == ['--launcher=slurm', '--work-dir', 'w']
    else:
        assert argv[tool + 2] == '--work-dir=work dir/x'
