"""First-run traps of issue #23: a trained config evaluated without its
weights, the clone folder shadowing the installed package, the demo's
``--out`` and a one-class vocabulary."""
import os
import subprocess
import sys
import types

import pytest

import mmovss
from mmovss.package_check import NamespaceImportError, check_package_import
from mmovss.trained_weights import (
    MissingTrainedWeights,
    learned_parameter_names,
    require_trained_weights,
)

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

ZERO_SHOT = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'
TRAINED = 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py'
SAM_CLIP = 'configs/ovshapes/sam-clip_random-tiny-sam-tiny-clip_ovshapes.py'


def _model(repo_root, config):
    init_default_scope('mmseg')
    return MODELS.build(Config.fromfile(str(repo_root / config)).model)


# ----------------------------------------------------------- trained weights
@pytest.mark.parametrize('config', [ZERO_SHOT, SAM_CLIP])
def test_training_free_models_need_no_checkpoint(repo_root, config):
    model = _model(repo_root, config)
    assert learned_parameter_names(model) == []
    require_trained_weights(model, None)


def test_trained_model_without_checkpoint_is_refused(repo_root):
    model = _model(repo_root, TRAINED)
    learned = learned_parameter_names(model)
    assert learned and all(n.startswith('decode_head.') for n in learned)
    with pytest.raises(MissingTrainedWeights, match=r"Config 'x.py' is a trained model "
                       r"\(11 learned parameter tensors"):
        require_trained_weights(model, None, config='x.py')
    require_trained_weights(model, 'work_dirs/iter_1000.pth')  # a checkpoint: fine
    require_trained_weights(model, None, allow_random=True)  # on purpose: fine


@pytest.fixture(scope='module')
def tiny_world(tmp_path_factory):
    from mmovss.ovshapes.writer import write_world
    root = tmp_path_factory.mktemp('traps_world')
    write_world(root, seed=4, num_train=0, num_val=2)
    return root


def test_test_tool_refuses_then_allows_random_weights(repo_root, tiny_world, tmp_path):
    from mmovss.testing.tools import load_tool, work_dir_log
    tool = load_tool('test.py')
    args = [str(repo_root / TRAINED), '--cfg-options',
            f'test_dataloader.dataset.data_root={tiny_world}']
    with pytest.raises(MissingTrainedWeights, match='is a trained model') as err:
        tool.main([*args, '--work-dir', str(tmp_path / 'refused')])
    assert '--allow-random-weights' in str(err.value)
    assert not list((tmp_path / 'refused').glob('*/*.json'))  # nothing was tested
    tool.main([*args, '--allow-random-weights', '--work-dir', str(tmp_path / 'allowed')])
    assert 'mIoU_unseen' in work_dir_log(tmp_path / 'allowed')


@pytest.fixture(scope='module')
def demo():
    from mmovss.testing.tools import load_tool
    return load_tool('demo.py').main


def test_demo_without_out_prints_and_writes_nothing(demo, repo_root, tiny_world, tmp_path,
                                                    capsys, monkeypatch):
    image = sorted((tiny_world / 'img_dir/val').glob('*.png'))[0]
    monkeypatch.chdir(tmp_path)
    code = demo([str(image), '-v', 'sky; grass; sand; wall', '-c',
                 str(repo_root / ZERO_SHOT)])
    out = capsys.readouterr().out
    assert code == 0
    assert f'{image.stem}: ' in out and '"out": null' in out
    assert os.listdir(tmp_path) == []


def test_demo_reports_a_misspelt_model_without_out(demo, tiny_world, capsys):
    image = sorted((tiny_world / 'img_dir/val').glob('*.png'))[0]
    assert demo([str(image), '-v', 'sky; grass', '-m', 'ovshapes-tinny']) == 2
    err = capsys.readouterr().err
    assert "Unknown model name 'ovshapes-tinny'" in err and 'ovshapes-tiny' in err


def test_demo_refuses_a_trained_config_without_weights(demo, repo_root, tiny_world, capsys):
    image = sorted((tiny_world / 'img_dir/val').glob('*.png'))[0]
    args = [str(image), '-v', 'sky; grass', '-c', str(repo_root / TRAINED)]
    assert demo(args) == 2
    assert 'is a trained model' in capsys.readouterr().err
    assert demo(args + ['--allow-random-weights']) == 0


def test_one_class_vocabulary_is_refused(demo, tiny_world, capsys, repo_root):
    from mmovss.apis import vocabulary_from_text
    with pytest.raises(ValueError, match='names one class.*"cat; background"'):
        vocabulary_from_text('cat')
    assert len(vocabulary_from_text('cat; dog')) == 2
    image = sorted((tiny_world / 'img_dir/val').glob('*.png'))[0]
    assert demo([str(image), '-v', 'sky', '-c', str(repo_root / ZERO_SHOT)]) == 2
    assert 'names one class' in capsys.readouterr().err


# ----------------------------------------------------------- namespace trap
def test_namespace_package_is_named_with_the_fix():
    fake = types.ModuleType('mmovss')
    fake.__path__ = ['/somewhere/mmovss']  # a namespace package has no __file__
    with pytest.raises(NamespaceImportError) as err:
        check_package_import(fake)
    assert "['/somewhere/mmovss']" in str(err.value)
    assert 'editable_mode=compat' in str(err.value)
    check_package_import(mmovss)  # the real package passes


def _shadowing_folder(tmp_path):
    """A folder that holds a directory named mmovss, as the clone's parent does."""
    (tmp_path / 'mmovss' / 'mmovss').mkdir(parents=True)
    (tmp_path / 'mmovss' / 'README.md').write_text('a clone')
    return tmp_path


IMPORT = ('import mmovss.apis, mmovss; from mmovss.apis import OpenVocabInferencer; '
          'print("FILE", mmovss.__file__)')


def test_standing_next_to_a_clone_never_fails_with_mmcv_ext(repo_root, tmp_path):
    """Whatever the install mode: the installed package wins, or the error
    says what happened (never ``No module named 'mmcv._ext'``)."""
    folder = _shadowing_folder(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    proc = subprocess.run([sys.executable, '-c', IMPORT], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert 'mmcv._ext' not in log
    if proc.returncode == 0:
        assert f'FILE {repo_root / "mmovss" / "__init__.py"}' in log
    else:
        assert 'NamespaceImportError' in log and 'editable_mode=compat' in log


def test_compat_install_path_beats_the_clone_folder(repo_root, tmp_path):
    """The README's ``editable_mode=compat`` install puts the repository on
    sys.path (a .pth line); a regular package there beats a namespace folder
    in the current directory."""
    folder = _shadowing_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.run([sys.executable, '-c', IMPORT], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f'FILE {repo_root / "mmovss" / "__init__.py"}' in proc.stdout


def test_readme_install_command_uses_compat_mode(repo_root):
    readme = (repo_root / 'README.md').read_text()
    ci = (repo_root / '.ci/run').read_text()
    command = 'python -m pip install -e ".[tests]" --config-settings editable_mode=compat'
    assert command in readme and command in ci
