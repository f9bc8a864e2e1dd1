"""``tools/ovshapes/pretrain_clip.py`` and the library behind it
(:func:`mmovss.ovshapes.pretrain.save_pretrained`): a short run is saved as
shipped (float16 tensors) with a record of the rounded weights' accuracy."""
import json

import pytest
import torch

from mmovss.ovshapes.pretrain import ovshapes_tokenizer, save_pretrained, zero_shot_accuracy
from mmovss.testing.tools import load_tool


def _load_tool(name):
    return load_tool(f'ovshapes/{name}.py')


def test_pretrain_tool_saves_float16_weights_and_their_record(tmp_path, capsys):
    out = tmp_path / 'clip.pt'
    _load_tool('pretrain_clip').main(['--out', str(out), '--steps', '2', '--batch-size', '4',
                                      '--eval-every', '0', '--threads', '1'])
    state = torch.load(out, map_location='cpu', weights_only=True)
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    record = json.loads((tmp_path / 'clip.json').read_text())
    assert record['threads'] == 1 and record['model_cfg']['embed_dim'] == 64
    assert record['command'].startswith('python ')
    assert set(record['zero_shot_accuracy']) == {'seen', 'unseen', 'all', 'chance'}
    assert record['final_loss'] is None or record['final_loss'] > 0
    assert 'zero-shot accuracy' in capsys.readouterr().out


def test_pretrain_tool_continues_from_a_saved_clip_and_carries_its_record(tmp_path):
    """``--init``: the second stage of the shipped two-stage recipe starts from the
    first stage's weights (a zero-step run returns them unchanged), records the
    first stage's record, and refuses a missing file or writing over its input."""
    tool = _load_tool('pretrain_clip')
    first, second = tmp_path / 'first.pt', tmp_path / 'second.pt'
    tool.main(['--out', str(first), '--steps', '2', '--batch-size', '4', '--eval-every', '0',
               '--threads', '1'])
    tool.main(['--out', str(second), '--init', str(first), '--recipe', 'single', '--steps', '0',
               '--batch-size', '4', '--eval-every', '0', '--threads', '1'])
    a = torch.load(first, map_location='cpu', weights_only=True)
    b = torch.load(second, map_location='cpu', weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / 'second.json').read_text())
    assert record['init'] == str(first)
    assert record['init_record'] == json.loads((tmp_path / 'first.json').read_text())
    # a run that trains moves the weights away from its start
    third = tmp_path / 'third.pt'
    tool.main(['--out', str(third), '--init', str(first), '--recipe', 'single', '--steps', '1',
               '--warmup', '1', '--batch-size', '4', '--eval-every', '0', '--threads', '1'])
    c = torch.load(third, map_location='cpu', weights_only=True)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(SystemExit, match='no such file'):
        tool.main(['--out', str(tmp_path / 'x.pt'), '--init', str(tmp_path / 'missing.pt')])
    with pytest.raises(SystemExit, match='same file'):
        tool.main(['--out', str(first), '--init', str(first), '--force'])
    assert torch.equal(torch.load(first, weights_only=True)['positional_embedding'],
                       a['positional_embedding'])


def test_save_pretrained_records_the_accuracy_of_the_rounded_weights(tmp_path):
    import open_clip

    from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG
    torch.manual_seed(0)
    model = open_clip.CLIP(**OVSHAPES_CLIP_CFG).eval()
    with torch.no_grad():  # values that float16 rounds
        for p in model.parameters():
            p.add_(1e-4 * torch.randn_like(p))
    record = save_pretrained(model, str(tmp_path / 'm.pt'), dict(command='x'))
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, value.half().float()), key
    assert record['command'] == 'x'
    assert record['zero_shot_accuracy'] == zero_shot_accuracy(model, ovshapes_tokenizer())
    assert json.loads((tmp_path / 'm.json').read_text()) == json.loads(json.dumps(record))


def test_make_dataset_refuses_a_non_empty_folder_without_force(tmp_path):
    """The output guard (mmovss.io) also protects make_dataset.py: a folder
    holding other files is refused unless --force/--overwrite, and kept."""
    tool = _load_tool('make_dataset')
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'notes.txt').write_text('keep me')
    with pytest.raises(SystemExit, match='not empty.*--overwrite'):
        tool.main(['--out', str(out), '--num-train', '2', '--num-val', '1'])
    assert (out / 'notes.txt').read_text() == 'keep me'
    assert not (out / 'img_dir').exists()
    tool.main(['--out', str(out), '--num-train', '2', '--num-val', '1', '--overwrite'])
    assert (out / 'classes.txt').is_file() and (out / 'notes.txt').is_file()


def test_pretrain_tool_refuses_an_out_its_record_would_replace(tmp_path):
    """``--out clip.json``: the record (``<out without extension>.json``) was
    written over the weights just saved, and the run reported success. Also an
    existing record of ``--out`` is not replaced without ``--force``. Both are
    refused before training."""
    tool = _load_tool('pretrain_clip')
    with pytest.raises(SystemExit, match='same file.*would replace the weights.*clip.pt'):
        tool.main(['--out', str(tmp_path / 'clip.json'), '--steps', '1', '--batch-size', '2',
                   '--eval-every', '0', '--threads', '1'])
    assert not (tmp_path / 'clip.json').exists()
    (tmp_path / 'other.json').write_text('{"notes": 1}')
    with pytest.raises(SystemExit, match=r'other.json \(the record of --out .*--force'):
        tool.main(['--out', str(tmp_path / 'other.pt'), '--steps', '1', '--batch-size', '2',
                   '--eval-every', '0', '--threads', '1'])
    assert (tmp_path / 'other.json').read_text() == '{"notes": 1}'
    assert not (tmp_path / 'other.pt').exists()


@pytest.mark.parametrize('option', [['--steps', '0'], ['--steps', '-2'], ['--batch-size', '1'],
                                    ['--batch-size', '0'], ['--threads', '0']])
def test_pretrain_tool_refuses_settings_that_train_nothing(tmp_path, capsys, option):
    """``--steps 0`` (without ``--init``) or negative saved the random initial model as
    a tiny CLIP, also over an existing one with ``--force``; a batch of one trains
    nothing (no negative pair); ``--threads 0`` failed after the output checks."""
    out = tmp_path / 'clip.pt'
    with pytest.raises(SystemExit) as exc:
        _load_tool('pretrain_clip').main(['--out', str(out), '--steps', '2', '--batch-size',
                                          '4', '--eval-every', '0', '--threads', '1',
                                          *option])
    assert exc.value.code == 2 and option[0] in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / 'clip.json').exists()


def test_an_interrupted_save_keeps_the_previous_clip_and_its_record(tmp_path, monkeypatch):
    """``save_pretrained`` over an existing tiny CLIP (``--force``, e.g. the shipped
    asset) killed while saving: the old weights and their record stay, together
    (before: a truncated ``.pt``, or new weights beside the old run's record)."""
    import open_clip

    from mmovss.ovshapes import pretrain as pretrain_module
    torch.manual_seed(0)
    model = open_clip.CLIP(**pretrain_module.OVSHAPES_CLIP_CFG)
    path = tmp_path / 'clip.pt'
    path.write_bytes(b'old weights')
    (tmp_path / 'clip.json').write_text('{"old": true}')
    real_save = torch.save

    def killed(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain_module.torch, 'save', killed)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained(model, str(path), dict(run='new'))
    assert path.read_bytes() == b'old weights'
    assert json.loads((tmp_path / 'clip.json').read_text()) == {'old': True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['clip.json', 'clip.pt']
    monkeypatch.setattr(pretrain_module.torch, 'save', real_save)
    record = save_pretrained(model, str(path), dict(run='new'))
    assert json.loads((tmp_path / 'clip.json').read_text()) == record
    assert torch.load(path, weights_only=True).keys() == model.state_dict().keys()
