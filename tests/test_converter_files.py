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
