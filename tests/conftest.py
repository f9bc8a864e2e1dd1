"""Shared pytest fixtures. ``import mmovss`` first: it makes mmseg importable."""
import os
import sys
from pathlib import Path

import pytest

import mmovss  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / 'shared'

# Tests run on 2 cores; more threads than cores only slow them down.
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope='session')
def tiny_dataset(tmp_path_factory):
    """A tiny 4-class dataset in the MMSeg layout (see mmovss.testing.data)."""
    from mmovss.testing.data import make_tiny_seg_dataset
    return make_tiny_seg_dataset(tmp_path_factory.mktemp('tiny_data'))


@pytest.fixture
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope='session')
def make_ovshapes_world(tmp_path_factory):
    """``make(num_val, seed)``: the folder of a tiny OVShapes world (2 training
    scenes, ``num_val`` validation scenes of 64 x 64) written by
    ``tools/ovshapes/make_dataset.py``; one world per arguments per session."""
    import subprocess
    made = {}

    def make(num_val: int, seed: int) -> str:
        if (num_val, seed) not in made:
            root = tmp_path_factory.mktemp(f'ovshapes_world_{seed}')
            tool = REPO_ROOT / 'tools' / 'ovshapes' / 'make_dataset.py'
            subprocess.run([sys.executable, str(tool), '--out', str(root), '--num-train', '2',
                            '--num-val', str(num_val), '--seed', str(seed)],
                           check=True, capture_output=True, cwd=REPO_ROOT)
            made[num_val, seed] = str(root)
        return made[num_val, seed]
    return make


@pytest.fixture(autouse=True)
def _drop_closed_log_files():
    """After each test, file handlers whose stream was closed leave the
    mmengine loggers. A web-UI test starts uvicorn, whose
    ``logging.config.dictConfig`` closes every existing handler, also the
    log file of a runner an earlier test ran in this process; mmengine's
    ``init_weights`` then writes to the current logger's closed file
    (``'NoneType' object has no attribute 'write'``) in a later test."""
    yield
    from logging import FileHandler

    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):
        for handler in list(logger.handlers):
            if isinstance(handler, FileHandler) and handler.stream is None:
                logger.removeHandler(handler)
