""".ci/run runs exactly the install and test commands that README.md shows."""
import re


def _commands(text):
    return [ln.strip() for ln in text.splitlines()
            if ln.strip().startswith('python -m pip install') or ln.strip().startswith('python -m pytest')]


def test_ci_runs_readme_commands(repo_root):
    ci = (repo_root / '.ci/run').read_text()
    readme = (repo_root / 'README.md').read_text()
    ci_cmds = _commands(ci)
    assert len(ci_cmds) == 2, ci_cmds
    for cmd in ci_cmds:
        assert re.search(rf'^{re.escape(cmd)}$', readme, re.M), f'README lacks: {cmd}'
    assert 'set -euo pipefail' in ci
