"""Our trained models against the official code (tiny random weights, CPU).

Each fixture under ``$MMOVSS_OFFICIAL_PARITY_DIR`` (default
``tests/data/official_parity/<method>/<fixture>/``) was written by
``tools/parity/<method>_reference.py`` from the official repository; the
method's checker (``mmovss.testing.official_parity.<method>``) converts the
official state dict with the package converter, loads it strictly into our
model built from a tiny config and compares every stored stage.
"""
import pytest

from mmovss.testing.official_parity import list_fixtures, load_fixture, run_fixture

METHODS = ['catseg', 'fcclip', 'san_official', 'zegformer', 'ovseg', 'lseg']


def _cases():
    for method in METHODS:
        for path in list_fixtures(method):
            yield pytest.param(method, path, id=f'{method}-{path.rsplit("/", 1)[-1]}')


CASES = list(_cases())


@pytest.mark.parametrize('method', METHODS)
def test_every_method_has_a_fixture(method):
    assert list_fixtures(method), (
        f'no official-parity fixture for {method}; make one with '
        f'tools/parity/{method}_reference.py --official-repo CLONE --seed 0 --out DIR')


@pytest.mark.parametrize('method,path', CASES)
def test_official_parity(method, path):
    report = run_fixture(method, path)
    fixture = load_fixture(path)
    assert not report.missing_stages(fixture), (
        f'stages not compared: {report.missing_stages(fixture)}')
    assert report.diffs or report.label_agreement
    assert not report.failures(), '\n'.join(report.failures())
