""".ci/run runs exactly the install and test commands that README.md shows."""
import re


def _commands(text):
    prefixes = ('python -m pip install', 'python -m ruff', 'python -m pytest')
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith(prefixes)]


def test_ci_runs_readme_commands(repo_root):
    ci = (repo_root / '.ci/run').read_text()
    readme = (repo_root / 'README.md').read_text()
    ci_cmds = _commands(ci)
    assert len(ci_cmds) == 3, ci_cmds
    assert ci_cmds.index('python -m ruff check .') < ci_cmds.index('python -m pytest'), \
        'the linter runs before the tests'
    for cmd in ci_cmds:
        assert re.search(rf'^{re.escape(cmd)}$', readme, re.M), f'README lacks: {cmd}'
    assert 'set -euo pipefail' in ci
