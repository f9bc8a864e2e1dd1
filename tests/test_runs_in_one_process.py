"""mmovss.runtime: several tool runs in one process (web UI, notebook, tests).

``name_run`` must keep two runs of one config in the same second apart (mmengine
shares its logger by a name with a one-second timestamp);
``memoize_config_formatting`` must give the very text mmengine's yapf call
gives, formatting each distinct text once; ``release_dataloader_workers``
must stop the workers of a finished run (they would otherwise wait for the
garbage collector, which stops them slowly) and leave the loader usable.
"""
import multiprocessing
import os.path as osp
import re
import time
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import DataLoader

from mmovss.runtime import memoize_config_formatting, release_dataloader_workers
from mmovss.testing.tools import load_tool, work_dir_log

import mmengine.config.config as config_module
from mmengine.config import Config

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


@pytest.fixture
def counted_yapf(monkeypatch):
    """yapf's FormatCode, counted, installed as mmengine's (restored after)."""
    import yapf.yapflib.yapf_api as yapf_api
    texts = []

    def format_code(text, **kwargs):
        texts.append(text)
        return yapf_api.FormatCode(text, **kwargs)

    monkeypatch.setattr(config_module, 'FormatCode', format_code)
    return texts


def test_config_text_is_formatted_once_per_distinct_text(counted_yapf):
    cfg = Config.fromfile(osp.join(CONFIGS, 'ovshapes', 'dense-clip_tiny-clip_ovshapes.py'))
    plain = cfg.pretty_text  # mmengine's own formatting, not memoized yet
    assert len(counted_yapf) == 1
    memoize_config_formatting()
    memoize_config_formatting()  # idempotent: one memo layer
    assert cfg.pretty_text == plain and cfg.pretty_text == plain
    assert len(counted_yapf) == 2  # formatted once more, then reused
    cfg.merge_from_dict({'work_dir': '/tmp/elsewhere'})
    changed = cfg.pretty_text
    assert changed != plain and "work_dir = '/tmp/elsewhere'" in changed
    assert len(counted_yapf) == 3  # a new text is formatted
    assert cfg.pretty_text == changed and len(counted_yapf) == 3


class _Squares(torch.utils.data.Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return i * i


def _loader(persistent):
    return DataLoader(_Squares(), batch_size=2, num_workers=2, persistent_workers=persistent)


def test_workers_of_a_finished_run_stop_and_the_loader_still_works():
    test_loader = _loader(persistent=True)  # as MMSegmentation's dataset bases
    assert [b.tolist() for b in test_loader] == [[0, 1], [4, 9]]
    train_loader = _loader(persistent=False)

    class InfiniteIterator:  # mmengine's _InfiniteDataloaderIterator keeps it here
        _iterator = iter(train_loader)

    next(InfiniteIterator._iterator)
    workers = test_loader._iterator._workers + InfiniteIterator._iterator._workers
    assert all(w.is_alive() for w in workers)
    runner = SimpleNamespace(
        _train_loop=SimpleNamespace(dataloader=train_loader, dataloader_iterator=InfiniteIterator),
        _val_loop=dict(type='ValLoop'),  # never built: skipped
        _test_loop=SimpleNamespace(dataloader=test_loader))
    release_dataloader_workers(runner)
    assert not any(w.is_alive() for w in workers)
    assert test_loader._iterator is None
    assert [b.tolist() for b in test_loader] == [[0, 1], [4, 9]]  # new workers
    release_dataloader_workers(runner)


def test_test_tool_leaves_no_worker_behind(tmp_path):
    """``tools/test.py`` in-process on a benchmark whose loader has 4
    persistent workers: none is alive when it returns."""
    from mmovss.testing.benchmark_data import make_benchmark_tree
    voc20 = make_benchmark_tree('voc20', 'mmseg', str(tmp_path / 'voc20'), 20)
    before = set(multiprocessing.active_children())
    load_tool('test.py').main([
        osp.join(CONFIGS, 'ovshapes', 'dense-clip_tiny-clip_ovshapes.py'), '--benchmark', 'voc20',
        '--work-dir', str(tmp_path / 'work'),
        '--cfg-options', f'test_dataloader.dataset.data_root={voc20.data_root}'])
    assert set(multiprocessing.active_children()) <= before


def test_two_runs_in_the_same_second_keep_their_own_logs(tmp_path, monkeypatch,
                                                         make_ovshapes_world):
    world = make_ovshapes_world(2, 5)
    frozen = time.localtime()
    monkeypatch.setattr(time, 'localtime', lambda *args: frozen)  # one timestamp for both
    main = load_tool('test.py').main
    config = osp.join(CONFIGS, 'ovshapes', 'dense-clip_tiny-clip_ovshapes.py')
    for run in ('first', 'second'):
        main([config, '--work-dir', str(tmp_path / run),
              '--cfg-options', f'test_dataloader.dataset.data_root={world}'])
    logs = [work_dir_log(tmp_path / run) for run in ('first', 'second')]
    for log, run in zip(logs, ('first', 'second')):
        assert len(re.findall(r'mIoU: [\d.]+', log)) == 1, log[-2000:]
        assert str(tmp_path / run) in log
