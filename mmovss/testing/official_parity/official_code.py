"""Running a user's clone of an official repository on CPU (for the generators).

Nothing of the official code is part of mmovss: ``tools/parity/*_reference.py``
take the clone's folder as an argument and use these helpers to import it
(detectron2 from its source tree, without its compiled ``_C``) and to replace
the few things such code hard-codes (CUDA, downloads, logging services).
"""
import contextlib
import os.path as osp
import random
import sys
import types
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np
import torch

__all__ = ['add_source_dirs', 'stub_module', 'seed_everything', 'cuda_as_noop',
           'capture_outputs', 'detectron2_dir']


def detectron2_dir(path: Optional[str]) -> Optional[str]:
    """Checks a detectron2 source clone (``--detectron2 DIR``); None keeps an installed one."""
    if path is None:
        return None
    if not osp.isfile(osp.join(path, 'detectron2', '__init__.py')):
        raise FileNotFoundError(
            f'--detectron2 {path!r} is not a detectron2 source clone (no '
            f'detectron2/__init__.py); clone github.com/facebookresearch/detectron2 and pass '
            f'its folder (nothing needs compiling).')
    return path


def add_source_dirs(*dirs: Optional[str]) -> None:
    """Puts folders first on ``sys.path`` (skipping None), checking they exist."""
    for path in reversed([d for d in dirs if d]):
        if not osp.isdir(path):
            raise FileNotFoundError(f'{path!r} is not a folder: pass the clone of the '
                                    f'official repository (--official-repo DIR).')
        path = osp.abspath(path)
        if path not in sys.path:
            sys.path.insert(0, path)


def stub_module(name: str, **attrs) -> types.ModuleType:
    """Registers an empty module (and its parents) unless it imports for real."""
    try:
        return __import__(name, fromlist=['_'])
    except ImportError:
        pass
    parts = name.split('.')
    for i in range(1, len(parts) + 1):
        sub = '.'.join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
            if i > 1:
                setattr(sys.modules['.'.join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
    module = sys.modules[name]
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


def seed_everything(seed: int) -> None:
    """Seeds Python, NumPy and torch (the official model's init draws from them)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def cuda_as_noop() -> Iterator[None]:
    """``Tensor.cuda()`` / ``Module.cuda()`` return self (CPU-only official code)."""
    saved = torch.Tensor.cuda, torch.nn.Module.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda = saved


@contextlib.contextmanager
def capture_outputs(modules: Dict[str, torch.nn.Module],
                    convert: Optional[Callable] = None) -> Iterator[Dict[str, List]]:
    """Records each named module's forward outputs (a list per name, one per call)."""
    store: Dict[str, List] = {name: [] for name in modules}
    handles = []
    for name, module in modules.items():
        def hook(_m, _i, out, name=name):
            store[name].append(convert(out) if convert else out)
        handles.append(module.register_forward_hook(hook))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
