"""One converter command line for every released format (mmovss/converters/files.py).

The official-format state dicts are the parity fixtures' (tests/data/official_parity/).
"""
import os
import os.path as osp

import pytest
import torch

from mmovss.apis.released_weights import prepare_weights
from mmovss.converters.common import ConversionError
from mmovss.converters.files import CONVERTED_META_KEY, convert_file, read_checkpoint
from mmovss.converters.formats import format_module
from mmovss.testing.official_parity import default_fixture_root
from mmovss.testing.tools import load_tool


def _official(method: str, tmp_path, name: str = 'official.pth') -> str:
    state = torch.load(osp.join(default_fixture_root(), method, 'seed0', 'state_dict.pth'),
                       map_location='cpu', weights_only=True)
    src = str(tmp_path / name)
    torch.save({'model': state}, src)
    return src


def _tool(fmt: str):
    return load_tool(f'model_converters/{fmt}_to_mmovss.py')


def test_a_file_of_another_format_is_refused_naming_its_converter(tmp_path):
    src = _official('catseg', tmp_path)
    with pytest.raises(SystemExit, match=r"not a fcclip_official checkpoint \(its keys are "
                       r"those of 'catseg_official': use tools/model_converters/"
                       r"catseg_official_to_mmovss.py\)"):
        _tool('fcclip_official').main([src, str(tmp_path / 'out.pth')])
    assert os.listdir(tmp_path) == ['official.pth']


def test_unknown_key_writes_nothing(tmp_path):
    state = torch.load(osp.join(default_fixture_root(), 'san_official', 'seed0',
                                'state_dict.pth'), map_location='cpu', weights_only=True)
    state['clip_rec_head.resblocks.0.attn.q_norm.weight'] = torch.zeros(1)
    src = str(tmp_path / 'extra.pth')
    torch.save({'model': state}, src)
    with pytest.raises(ConversionError, match='q_norm'):
        convert_file('san_official', src, str(tmp_path / 'out.pth'))
    assert sorted(os.listdir(tmp_path)) == ['extra.pth']  # no output, no temporary


def test_converted_file_carries_the_record_and_the_format_facts(tmp_path):
    src = _official('zegformer', tmp_path)
    dst = str(tmp_path / 'ours.pth')
    meta = _tool('zegformer_official').main([src, dst])
    saved = read_checkpoint(dst)
    record = saved['meta'][CONVERTED_META_KEY]
    assert record['format'] == 'zegformer_official'
    assert record['file'] == osp.realpath(src)
    module = format_module('zegformer_official')
    assert saved['meta']['temperature'] == pytest.approx(
        module.official_temperature(read_checkpoint(src)))
    assert meta == saved['meta']
    expected = module.convert(read_checkpoint(src))
    assert set(saved['state_dict']) == set(expected)
    assert all(torch.equal(saved['state_dict'][k], v) for k, v in expected.items())


def test_a_file_converted_by_hand_is_taken_as_is_by_the_weights_loader(tmp_path):
    src = _official('ovseg', tmp_path)
    dst = str(tmp_path / 'ours.pth')
    _tool('ovseg_official').main([src, dst])
    before = os.path.getmtime(dst)
    prepared = prepare_weights(dst, cache_dir=str(tmp_path / 'cache'), verbose=False)
    assert prepared.path == dst and prepared.converted and not prepared.fresh
    assert prepared.format == 'ovseg_official'
    assert os.path.getmtime(dst) == before
    assert not osp.exists(tmp_path / 'cache')


def test_the_tool_never_writes_over_its_input(tmp_path):
    src = _official('san_official', tmp_path)
    size = os.path.getsize(src)
    with pytest.raises(SystemExit, match='error: '):
        _tool('san_official').main([src, src])
    assert os.path.getsize(src) == size



def test_an_existing_dst_is_replaced_only_with_overwrite(tmp_path):
    """A second released file given as DST by mistake (or an earlier
    conversion) stays intact unless --overwrite; with it, DST is replaced.
    The SAN mmseg converter (its own command line) refuses the same way."""
    src = _official('zegformer', tmp_path)
    other = tmp_path / 'model_large.pth'
    for tool in ('zegformer_official', 'san_mmseg'):
        other.write_bytes(b'another released checkpoint')
        with pytest.raises(SystemExit, match=r"DST '.*model_large.pth' exists .*--overwrite"):
            _tool(tool).main([src, str(other)])
        assert other.read_bytes() == b'another released checkpoint'
    _tool('zegformer_official').main([src, str(other), '--overwrite'])
    assert read_checkpoint(str(other))['meta'][CONVERTED_META_KEY]['format'] == \
        'zegformer_official'


def test_san_mmseg_converter_refuses_files_of_no_san_model_in_one_line(tmp_path, capsys):
    """Before: KeyError / AttributeError tracebacks."""
    tool = _tool('san_mmseg')
    plain = tmp_path / 'plain.pth'
    torch.save({'model': {'w': torch.zeros(1)}}, plain)
    tensor = tmp_path / 'tensor.pth'
    torch.save(torch.zeros(2), tensor)
    with pytest.raises(SystemExit, match="plain.pth' is not an mmseg SAN checkpoint"):
        tool.main([str(plain), str(tmp_path / 'a.pth')])
    with pytest.raises(SystemExit, match="tensor.pth' holds a Tensor, not a checkpoint dict"):
        tool.main([str(tensor), str(tmp_path / 'b.pth')])
    assert sorted(os.listdir(tmp_path)) == ['plain.pth', 'tensor.pth']


def test_a_checkpoint_of_other_shapes_is_refused_in_one_line_naming_them(tmp_path):
    """Before: 'The model and loaded state dict do not match exactly' (no key named)
    for tensors of another shape, raised as a RuntimeError: a traceback from the
    command line."""
    from torch import nn

    from mmovss.runtime import CheckpointMismatchError, load_model_checkpoint_strictly
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    path = str(tmp_path / 'wider.pth')
    torch.save(dict(state_dict=nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3)).state_dict()),
               path)
    for absent in ((), ('0.',)):  # mmengine's loader; the loader of released files
        with pytest.raises(CheckpointMismatchError,
                           match=r"wider.pth' does not fit the model of this config: 2 keys "
                                 r'of another shape \(e\.g\. 1\.weight: \(3, 4\) in the '
                                 r'checkpoint, \(2, 4\) in the model') as info:
            load_model_checkpoint_strictly(model, path, absent)
        assert isinstance(info.value, ValueError)  # run_tool: one line, exit code 2
        assert isinstance(info.value, RuntimeError)  # as before for Python callers
    assert model[1].weight.shape == (2, 4)  # nothing was loaded


def test_a_released_file_that_does_not_fit_the_config_is_one_line(tmp_path, capsys):
    """Before: tools/test.py CONFIG RELEASED.pth printed torch's traceback with one
    'size mismatch' line per tensor and named only the cached conversion."""
    from mmovss.runtime import run_tool
    src = _official('zegformer', tmp_path)
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    config = osp.join(repo, 'configs/ovshapes/zegformer_tiny-clip_1k_ovshapes-seen.py')
    with pytest.raises(SystemExit) as info:
        run_tool(load_tool('test.py').main,
                 [config, src, '--weights-dir', str(tmp_path / 'cache'),
                  '--work-dir', str(tmp_path / 'work')])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: Checkpoint ') and 'Traceback' not in err, err[-2000:]
    assert 'keys of another shape (e.g. ' in err and 'size mismatch' not in err
    assert f"(converted from {src!r}, format zegformer_official)" in err


def test_a_released_file_with_the_config_of_another_release_is_warned_about(tmp_path):
    """ZegFormer's VOC-15 and COCO-Stuff-156 releases share one architecture: the
    VOC file loaded into the COCO config without a missing key and was scored
    with the COCO config's seen classes, templates and calibration, silently."""
    from mmovss.apis.released_weights import released_config_mismatch
    repo = osp.dirname(osp.dirname(osp.abspath(__file__)))
    voc = 'zegformer_R101_bs32_10k_vit16_voc.pth'
    src = _official('zegformer', tmp_path, voc)
    dst = str(tmp_path / 'zegformer_voc_ours.pth')  # converted by hand, renamed
    _tool('zegformer_official').main([src, dst])
    configs = osp.join(repo, 'configs', 'zegformer')
    coco = osp.join(configs, 'zegformer-official_r101-vit-b16_60k_coco-stuff156-640x640.py')
    own = osp.join(configs, 'zegformer-official_r101-vit-b16_10k_voc15-512x512.py')
    for weights in (src, dst):  # the released file (converted and cached) or a conversion
        prepared = prepare_weights(weights, cache_dir=str(tmp_path / 'cache'), verbose=False)
        warning = released_config_mismatch(coco, prepared)
        assert warning is not None and warning.startswith(
            f'{voc} is the released checkpoint of '
            'zegformer-official_r101-vit-b16_10k_voc15-512x512 (config ')
        assert own in warning and f'used with {coco}' in warning
        assert released_config_mismatch(own, prepared) is None
    other = _official('zegformer', tmp_path, 'my_zegformer.pth')  # not a released name
    prepared = prepare_weights(other, cache_dir=str(tmp_path / 'cache'), verbose=False)
    assert released_config_mismatch(coco, prepared) is None


def test_a_detectron2_pickle_is_named_as_such_not_as_a_truncated_file(tmp_path):
    """Before: a detectron2 model-zoo .pkl (a plain pickle of NumPy arrays) was
    reported as 'truncated or corrupt ... download it again'."""
    import pickle

    state = torch.load(osp.join(default_fixture_root(), 'zegformer', 'seed0', 'state_dict.pth'),
                       map_location='cpu', weights_only=True)
    src = tmp_path / 'model_final.pkl'
    with open(src, 'wb') as f:
        pickle.dump({'model': {k: v.numpy() for k, v in state.items()},
                     '__author__': 'Detectron2 Model Zoo'}, f)
    with pytest.raises(SystemExit, match=r"model_final.pkl' is a plain pickle, not a torch.save "
                                         r'file \(e\.g\. a detectron2 \.pkl') as info:
        _tool('zegformer_official').main([str(src), str(tmp_path / 'out.pth')])
    assert 'truncated' not in str(info.value.code)
    # the recipe of the message converts it, running nothing of the file
    from mmovss.io import load_restricted_pickle
    d = load_restricted_pickle(str(src))
    torch.save({'model': {k: torch.as_tensor(v) for k, v in d['model'].items()}},
               str(tmp_path / 'model.pth'))
    _tool('zegformer_official').main([str(tmp_path / 'model.pth'), str(tmp_path / 'out.pth')])

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {tmp_path / "ran"}',))
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps({'model': Evil()}))
    with pytest.raises(SystemExit, match='truncated or corrupt'):
        _tool('zegformer_official').main([str(evil), str(tmp_path / 'out2.pth')])
    assert not (tmp_path / 'ran').exists()


def test_test_tool_logs_the_released_config_warning(tmp_path, make_ovshapes_world, monkeypatch):
    """tools/test.py asks released_config_mismatch (above) about its config and
    checkpoint and logs the answer as a warning."""
    from mmovss.runtime import load_config
    from mmovss.testing.tools import REPO_ROOT, work_dir_log

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    config = str(REPO_ROOT / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py')
    init_default_scope('mmseg')
    model = MODELS.build(load_config(config).model)
    checkpoint = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    tool = load_tool('test.py')
    asked = []

    def mismatch(config_, weights):
        asked.append((config_, weights.path))
        return 'X.pth is the released checkpoint of Y (config y.py), but it is used with z.py.'
    monkeypatch.setattr(tool, 'released_config_mismatch', mismatch)
    world = make_ovshapes_world(num_val=3, seed=7)
    tool.main([config, checkpoint, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
               f'test_dataloader.dataset.data_root={world}'])
    assert asked == [(config, checkpoint)]
    assert 'WARNING: X.pth is the released checkpoint of Y' in work_dir_log(tmp_path / 'work')
