"""Interrupted, resumed and multi-process runs lose nothing.

* SIGKILL in the middle of training: ``--resume`` continues from the newest
  complete checkpoint with the same iteration counter, learning rate and
  data order, so the losses after the resume equal an uninterrupted run's.
* A checkpoint cut short while being written is never loaded.
* A checkpoint of another model is refused by tools/test.py.
* Distributed testing (2 processes, gloo) gives exactly the single-process
  mIoU, and evaluation is deterministic.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

CONFIG = 'tests/data/configs/tiny_fcn.py'
ITERS = 12


def _opts(root, *extra):
    return ['--cfg-options', *[f'{k}.dataset.data_root={root}' for k in
                               ('train_dataloader', 'val_dataloader', 'test_dataloader')],
            f'train_cfg.max_iters={ITERS}', f'param_scheduler.0.end={ITERS}',
            # no random flip or dropout: mmengine does not restore the RNG
            # states on resume; without them the resumed run must match the
            # uninterrupted one exactly
            'train_dataloader.dataset.pipeline.2.prob=0.0', 'model.decode_head.dropout_ratio=0.0',
            *extra]


def _run(repo_root, args, timeout=400):
    proc = subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def test_main(repo_root):
    """``tools/test.py``'s ``main`` in this process, for the runs whose point
    is not the process itself (refusals, single-process metrics)."""
    from mmovss.testing.tools import load_tool, work_dir_log
    main = load_tool('test.py').main

    def run(args, work_dir):
        """Runs ``tools/test.py CONFIG *args --work-dir work_dir``; returns its log."""
        main([str(repo_root / CONFIG), *args, '--work-dir', str(work_dir)])
        return work_dir_log(work_dir)
    return run


def _train_log(log):
    """{iteration: (lr, loss)} from mmengine's training log lines."""
    found = re.findall(r'Iter\(train\) \[\s*(\d+)/\d+\]\s+lr: ([\d.e+-]+).*?\bloss: ([\d.]+)', log)
    return {int(i): (float(lr), float(loss)) for i, lr, loss in found}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmovss.testing.data import make_tiny_seg_dataset
    return make_tiny_seg_dataset(tmp_path_factory.mktemp('rel') / 'data')['data_root']


@pytest.fixture(scope='module')
def reference(tmp_path_factory, repo_root, data):
    work = tmp_path_factory.mktemp('ref')
    code, log = _run(repo_root, ['tools/train.py', CONFIG, '--work-dir', str(work), *_opts(data)])
    assert code == 0, log[-3000:]
    return dict(work=work, log=_train_log(log))


def test_sigkill_mid_training_then_resume(tmp_path, repo_root, data, reference):
    work = tmp_path / 'killed'
    log_file = tmp_path / 'killed.log'
    with open(log_file, 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, 'tools/train.py', CONFIG, '--work-dir', str(work), *_opts(data)],
            cwd=repo_root, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        pointer = work / 'last_checkpoint'  # written once iter_3.pth is complete
        while (time.time() < deadline and proc.poll() is None
               and not (pointer.exists() and pointer.read_text().endswith('iter_3.pth'))):
            time.sleep(0.02)
    assert (work / 'iter_3.pth').exists(), log_file.read_text()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / f'iter_{ITERS}.pth').exists(), 'the run finished before the kill'
    code, log = _run(repo_root, ['tools/train.py', CONFIG, '--work-dir', str(work),
                                 '--resume', *_opts(data)])
    assert code == 0, log[-3000:]
    resumed = int(re.search(r'resumed epoch: \d+, iter: (\d+)', log).group(1))
    assert resumed >= 3 and resumed % 3 == 0
    after = _train_log(log)
    assert min(after) == resumed + 1 and max(after) == ITERS
    for it, (lr, loss) in after.items():  # same schedule and data order as uninterrupted
        ref_lr, ref_loss = reference['log'][it]
        assert lr == pytest.approx(ref_lr, rel=1e-6)
        assert loss == pytest.approx(ref_loss, abs=2e-4), it


def test_truncated_checkpoint_is_never_resumed(tmp_path, repo_root, data, reference,
                                                test_main):
    work = tmp_path / 'trunc'
    shutil.copytree(reference['work'], work)
    good = work / 'iter_9.pth'
    bad = work / 'iter_12.pth'
    payload = good.read_bytes()
    bad.write_bytes(payload[: len(payload) // 2])  # killed while writing
    (work / 'last_checkpoint').write_text(str(bad))
    code, log = _run(repo_root, ['tools/train.py', CONFIG, '--work-dir', str(work), '--resume',
                                 *_opts(data)])
    assert code == 0, log[-3000:]
    assert 'skipping incomplete checkpoint' in log and 'iter_12.pth' in log
    assert 'resumed epoch: 0, iter: 9' in log
    with pytest.raises(FileNotFoundError, match='does not exist'):
        test_main([str(work / 'broken.pth'), *_opts(data)], tmp_path / 'missing')
    (work / 'broken.pth').write_bytes(payload[:1000])
    with pytest.raises(ValueError, match='truncated or corrupt'):
        test_main([str(work / 'broken.pth'), *_opts(data)], tmp_path / 'broken')


def test_checkpoint_of_another_model_is_refused(tmp_path, data, reference, test_main):
    ckpt = str(reference['work'] / f'iter_{ITERS}.pth')
    other = ['model.decode_head.num_convs=2']
    with pytest.raises(RuntimeError, match='does not fit the model of this config') as err:
        test_main([ckpt, *_opts(data, *other)], tmp_path / 'strict')
    assert 'missing keys' in str(err.value)
    assert '--non-strict' in str(err.value)  # the flag that loads it anyway
    log = test_main([ckpt, '--non-strict', *_opts(data, *other)], tmp_path / 'non_strict')
    assert _miou(log)


def _miou(log):
    found = re.findall(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)', log)
    assert found, log[-3000:]
    return found[-1]


def test_distributed_test_equals_single_process_and_is_deterministic(tmp_path, repo_root, data,
                                                                      reference, test_main):
    ckpt = str(reference['work'] / f'iter_{ITERS}.pth')
    single = [_miou(test_main([ckpt, *_opts(data)], tmp_path / f's{i}')) for i in range(2)]
    assert single[0] == single[1]
    env = dict(os.environ, PORT='29517', OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', 'tools/dist_test.sh', CONFIG, ckpt, '2', '--work-dir',
                           str(tmp_path / 'dist'), *_opts(data)], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'gloo' in log
    assert _miou(log) == single[0]


def test_distributed_training_two_processes(tmp_path, repo_root, data):
    env = dict(os.environ, PORT='29523', OMP_NUM_THREADS='1')
    work = tmp_path / 'dist_train'
    proc = subprocess.run(['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', str(work),
                           *_opts(data, 'train_cfg.max_iters=4', 'param_scheduler.0.end=4',
                                  'default_hooks.checkpoint.interval=4')],
                          cwd=repo_root, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'Distributed training: True' in log, log[-3000:]
    assert 'Iter(train) [4/4]' in log
    assert (work / 'iter_4.pth').is_file()
