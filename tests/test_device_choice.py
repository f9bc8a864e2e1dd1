"""A device the machine does not have, asked for at any entry point, is one
clear line naming the device and the fix, before anything is built or
downloaded (``mmovss.runtime.device_problem``, the one check)."""
import pytest
import torch

from mmovss.runtime import DeviceUnavailableError, check_device, device_problem
from mmovss.testing.tools import load_tool


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)


@pytest.fixture
def nothing_built(monkeypatch):
    """The inferencer fails the test if it resolves a model (builds or downloads)."""
    import mmovss.apis.open_vocab_inferencer as module

    def resolve_model(*args, **kwargs):
        raise AssertionError('the model was resolved before the device was checked')

    monkeypatch.setattr(module, 'resolve_model', resolve_model)


def _one_line(message: str) -> None:
    assert '\n' not in message and 'Traceback' not in message, message


def test_cuda_without_gpu_names_the_device_and_the_fix(no_cuda):
    for option, fix in (('--device', '--device cpu'), ('device', "device='cpu'")):
        message = device_problem('cuda', option)
        _one_line(message)
        assert message.startswith(f"{option} 'cuda': " if option == '--device'
                                  else "device='cuda': ")
        assert 'no CUDA device is available (torch.cuda.is_available() is False' in message
        assert f'use {fix}' in message
    assert device_problem('cpu') is None
    assert check_device(None) is None


def test_unknown_device_names_and_gpu_indices(two_gpus):
    message = device_problem('gpu', 'device')
    assert message.startswith("device='gpu' is not a device name (PyTorch calls a GPU 'cuda')")
    assert 'use cpu, cuda or cuda:N' in message
    message = device_problem('cuda:7')
    assert message.startswith("--device 'cuda:7': this machine has 2 CUDA device(s), cuda:0 "
                              'to cuda:1')
    assert device_problem('cuda:1') is None
    assert "no meta device is available here; use --device cpu" in device_problem('meta')
    with pytest.raises(DeviceUnavailableError, match="'gpu' is not a device name"):
        check_device('gpu')


@pytest.mark.parametrize('device, fixture, expected', [
    ('cuda', 'no_cuda', r"device='cuda': no CUDA device is available \(torch.cuda"
                        r".is_available\(\) is False.*use device='cpu'"),
    ('gpu', 'no_cuda', "device='gpu' is not a device name"),
    ('cuda:7', 'two_gpus', "device='cuda:7': this machine has 2 CUDA device"),
])
def test_inferencer_refuses_before_building(request, nothing_built, device, fixture, expected):
    # before: torch's 'Found no NVIDIA driver on your system' / 'Expected one of
    # cpu, cuda, ... device type' traceback, after the model was built
    request.getfixturevalue(fixture)
    from mmovss.apis import OpenVocabInferencer
    with pytest.raises(DeviceUnavailableError, match=expected) as caught:
        OpenVocabInferencer('ovshapes-tiny', device=device)
    assert isinstance(caught.value, ValueError)  # the tools' run_tool: one line
    _one_line(str(caught.value))


def test_webui_refuses_cuda_without_gpu(no_cuda):
    webui = load_tool('webui.py')
    if webui.gr is None:
        pytest.skip('Gradio is not installed')
    with pytest.raises(ValueError, match=r"--device 'cuda': no CUDA device is available.*"
                                         r'use --device cpu'):
        webui.main(['--models', 'ovshapes-tiny', '--device', 'cuda'])


@pytest.mark.parametrize('tool, argv', [
    ('analysis_tools/vocabulary_report.py', ['CONFIG.py']),
    ('ovseg/build_region_data.py', ['CONFIG.py', 'model.pth', '--captions', 'captions.json',
                                    '--images', 'img', '--out', 'out']),
])
def test_analysis_tools_refuse_cuda_without_gpu(no_cuda, capsys, tool, argv):
    # before: vocabulary_report built the data and the model, then torch's traceback
    module = load_tool(tool)
    with pytest.raises(SystemExit) as exited:
        module.parse_args(argv + ['--device', 'cuda'])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device 'cuda': no CUDA device is available"), err
    assert 'use --device cpu' in err and err.count('\n') == 1, err  # no usage text


def test_demo_device_error_is_one_line(no_cuda, tmp_path, capsys):
    # before: argparse's 10-line usage of every flag, then the error
    demo = load_tool('demo.py')
    with pytest.raises(SystemExit) as exited:
        demo.main([str(tmp_path / 'a.png'), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                   '--device', 'cuda'])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device 'cuda': no CUDA device is available") and \
        err.count('\n') == 1, err
