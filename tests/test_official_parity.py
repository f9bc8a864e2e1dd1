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


def test_tolerance_helpers_for_fixtures_made_on_another_cpu():
    import numpy as np

    from mmovss.testing.official_parity import ParityReport, decided_pixels, magnitude_atol
    assert magnitude_atol(np.array([0.5, -0.2])) == 1e-4          # within +-1: absolute
    assert magnitude_atol(np.array([-20.0, 3.0])) == 20 * 1e-4     # scaled by the magnitude
    scores = np.array([[[1.0, 0.50]], [[0.9, 0.49995]], [[0.0, 0.0]]])  # (classes, 1, 2)
    decided = decided_pixels(scores, 2e-4, axis=0)
    assert decided.tolist() == [[True, False]]                     # margins 0.1 and 5e-5
    report = ParityReport()
    official = np.array([[0, 0]])
    # the tie flips: still equal where it counts
    assert report.compare_labels('tie', np.array([[0, 1]]), official, decided) == 1.0
    # a decided pixel flips: counted
    assert report.compare_labels('decided', np.array([[1, 0]]), official, decided) == 0.0
    assert report.failures() == ['decided: 0.0000% labels equal < 99.9%']
