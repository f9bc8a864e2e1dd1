"""Traps of tools/train.py and tools/test.py found by a user's-eye audit
(2026-12-07); each test fails on the code before."""
import os
import time

import pytest
import torch

from mmovss.runtime import find_resumable_checkpoint
from mmovss.testing.tools import REPO_ROOT, load_tool

REFINE = str(REPO_ROOT / 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py')


def _save(path, step):
    torch.save({'state_dict': {'x': torch.zeros(1)}, 'meta': {'iter': step}}, path)
    time.sleep(0.01)  # distinct modification times


def test_resume_takes_the_newest_run_not_the_highest_step(tmp_path):
    """A work dir reused by a new, shorter run keeps the old run's iter_6;
    --resume used to take it (highest N) instead of the new run's iter_2."""
    for step in (2, 4, 6):  # the earlier run
        _save(tmp_path / f'iter_{step}.pth', step)
    _save(tmp_path / 'iter_2.pth', 2)  # the new run overwrote iter_2
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    path, skipped = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_2.pth') and skipped == []
    # a run killed after writing iter_8 but before last_checkpoint: iter_8 is newest
    _save(tmp_path / 'iter_8.pth', 8)
    assert find_resumable_checkpoint(str(tmp_path))[0] == str(tmp_path / 'iter_8.pth')


def test_a_new_run_in_a_work_dir_with_checkpoints_is_refused(tmp_path, monkeypatch):
    train = load_tool('train.py')
    monkeypatch.setattr(train.Runner, 'from_cfg',
                        lambda *a, **k: pytest.fail('built the runner before refusing'))
    _save(tmp_path / 'iter_4.pth', 4)
    before = (tmp_path / 'iter_4.pth').read_bytes()
    with pytest.raises(SystemExit, match=r"holds checkpoints of an earlier run \(iter_4.pth\)"):
        train.main([REFINE, '--work-dir', str(tmp_path)])
    assert (tmp_path / 'iter_4.pth').read_bytes() == before
    with pytest.raises(pytest.fail.Exception, match='built the runner'):
        train.main([REFINE, '--work-dir', str(tmp_path), '--overwrite'])  # allowed
    assert os.listdir(tmp_path) == ['iter_4.pth']


def test_a_misspelt_cfg_option_key_is_warned_about_with_the_likely_one(capsys):
    """mmengine adds any new key silently (``model.test_cfg.mdoe=slide`` ran
    the whole test with the config's mode)."""
    from mmovss.runtime import load_config, misspelt_option_keys

    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmovss_option_test')
    cfg = load_config(REFINE, {'model.test_cfg.mdoe': 'slide', 'trian_cfg.max_iters': 4,
                               'model.decode_head.ensemble': False, 'load_from': 'x.pth'})
    out = capsys.readouterr()
    text = out.out + out.err
    assert "--cfg-options model.test_cfg.mdoe: the config has no 'mdoe'" in text
    assert "did you mean 'mode'?" in text and "did you mean 'train_cfg'?" in text
    assert 'ensemble' not in text and 'load_from' not in text  # new keys without a twin
    assert cfg.model.test_cfg.mdoe == 'slide'  # merged all the same: a warning only
    assert misspelt_option_keys(cfg, {'train_dataloader.dataset.pipeline.1.type': 'x'}) == []
