"""The helpers that time official training-free codes (issue #20, no official code needed)."""
import textwrap

import torch

from mmovss.benchmarking.published_reference import METHODS, cpu_only
from mmovss.benchmarking.training_free_official import OFFICIAL_CLASSES, official_predict_times


def test_official_predict_is_timed_in_a_subprocess(tmp_path):
    """The class named for the method gets its ``predict`` timed when the script defines it;
    other classes and calls are untouched."""
    script = tmp_path / 'fake_reference.py'
    script.write_text(textwrap.dedent('''
        import sys, time

        class CorrCLIPSegmentation:
            def predict(self, x):
                time.sleep(0.05)
                return x + 1

        class Other:
            def predict(self, x):
                return x

        assert sys.argv[1:] == ['--out', 'somewhere']
        assert CorrCLIPSegmentation().predict(1) == 2
        Other().predict(0)
    '''))
    records = official_predict_times('corrclip', [str(script), '--out', 'somewhere'])
    assert [r['cls'] for r in records] == ['CorrCLIPSegmentation']
    assert records[0]['seconds'] >= 0.05


def test_failing_official_run_is_reported(tmp_path):
    script = tmp_path / 'broken.py'
    script.write_text('raise SystemExit("no official clone here")\n')
    try:
        official_predict_times('trident', [str(script)])
    except RuntimeError as err:
        assert 'no official clone here' in str(err)
    else:
        raise AssertionError('a failed official run must raise')


def test_cpu_only_keeps_modules_and_tensors_on_the_cpu():
    layer = torch.nn.Linear(2, 2)
    original = torch.nn.Module.to, torch.Tensor.cuda
    with cpu_only():
        assert layer.to(torch.device('cuda')) is layer
        assert layer.to('cuda', torch.float64).weight.dtype == torch.float64
        assert torch.ones(1).cuda().device.type == 'cpu'
    assert (torch.nn.Module.to, torch.Tensor.cuda) == original  # restored


def test_methods_are_registered():
    assert {'resclip', 'scclip'} <= set(METHODS)
    assert set(OFFICIAL_CLASSES) == {'corrclip', 'trident'}
