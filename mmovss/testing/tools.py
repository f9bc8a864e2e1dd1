"""The command-line tools of ``tools/`` as modules, for tests that call their
``main`` in the test process (no interpreter start per run)."""
import importlib.util
from pathlib import Path
from types import ModuleType

__all__ = ['REPO_ROOT', 'load_tool', 'work_dir_log']

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_tool(relative_path: str) -> ModuleType:
    """``tools/<relative_path>`` (e.g. ``'test.py'``) imported as a module."""
    path = REPO_ROOT / 'tools' / relative_path
    name = 'mmovss_tool_' + relative_path.replace('/', '_').removesuffix('.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def work_dir_log(work_dir) -> str:
    """The text of the one log file a ``tools/train.py`` / ``tools/test.py`` run
    wrote in ``work_dir`` (``<work_dir>/<timestamp>/<timestamp>.log``)."""
    logs = sorted(Path(work_dir).glob('*/*.log'))
    if len(logs) != 1:
        raise AssertionError(f'expected one run log in {work_dir}, found {logs}')
    return logs[0].read_text()
