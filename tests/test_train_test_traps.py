"""Traps of tools/train.py and tools/test.py found by a user's-eye audit
(2026-12-07); each test fails on the code before."""
import os
import time

import pytest
import torch

from mmovss.runtime import find_resumable_checkpoint
from mmovss.testing.tools import REPO_ROOT, load_tool

REFINE = str(REPO_ROOT / 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py')


def _save(path, step):
    torch.save({'state_dict': {'x': torch.zeros(1)}, 'meta': {'iter': step}}, path)
    time.sleep(0.01)  # distinct modification times


def test_resume_takes_the_newest_run_not_the_highest_step(tmp_path):
    """A work dir reused by a new, shorter run keeps the old run's iter_6;
    --resume used to take it (highest N) instead of the new run's iter_2."""
    for step in (2, 4, 6):  # the earlier run
        _save(tmp_path / f'iter_{step}.pth', step)
    _save(tmp_path / 'iter_2.pth', 2)  # the new run overwrote iter_2
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    path, skipped = find_resumable_checkpoint(str(tmp_path))
    assert path == str(tmp_path / 'iter_2.pth') and skipped == []
    # a run killed after writing iter_8 but before last_checkpoint: iter_8 is newest
    _save(tmp_path / 'iter_8.pth', 8)
    assert find_resumable_checkpoint(str(tmp_path))[0] == str(tmp_path / 'iter_8.pth')


def test_a_new_run_in_a_work_dir_with_checkpoints_is_refused(tmp_path, monkeypatch):
    train = load_tool('train.py')
    monkeypatch.setattr(train.Runner, 'from_cfg',
                        lambda *a, **k: pytest.fail('built the runner before refusing'))
    _save(tmp_path / 'iter_4.pth', 4)
    before = (tmp_path / 'iter_4.pth').read_bytes()
    with pytest.raises(SystemExit, match=r"holds checkpoints of an earlier run \(iter_4.pth\)"):
        train.main([REFINE, '--work-dir', str(tmp_path)])
    assert (tmp_path / 'iter_4.pth').read_bytes() == before
    with pytest.raises(pytest.fail.Exception, match='built the runner'):
        train.main([REFINE, '--work-dir', str(tmp_path), '--overwrite'])  # allowed
    assert os.listdir(tmp_path) == ['iter_4.pth']


def test_a_misspelt_cfg_option_key_is_warned_about_with_the_likely_one(capsys):
    """mmengine adds any new key silently (``model.test_cfg.mdoe=slide`` ran
    the whole test with the config's mode)."""
    from mmovss.runtime import load_config, misspelt_option_keys

    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmovss_option_test')
    cfg = load_config(REFINE, {'model.test_cfg.mdoe': 'slide', 'trian_cfg.max_iters': 4,
                               'model.decode_head.ensemble': False, 'load_from': 'x.pth'})
    out = capsys.readouterr()
    text = out.out + out.err
    assert "--cfg-options model.test_cfg.mdoe: the config has no 'mdoe'" in text
    assert "did you mean 'mode'?" in text and "did you mean 'train_cfg'?" in text
    assert 'ensemble' not in text and 'load_from' not in text  # new keys without a twin
    assert cfg.model.test_cfg.mdoe == 'slide'  # merged all the same: a warning only
    assert misspelt_option_keys(cfg, {'train_dataloader.dataset.pipeline.1.type': 'x'}) == []


def test_a_cfg_option_below_a_value_that_is_no_dict_names_the_option():
    """``train_dataloader.dataset.data_root=DIR`` (as configs/_base_/datasets/
    ovshapes.py suggests) on a training-free config, whose train_dataloader is
    None, ended in mmengine's TypeError traceback naming no option."""
    with pytest.raises(ValueError, match=r'--cfg-options train_dataloader.dataset.data_root: the '
                       r'config sets train_dataloader = None, .*leave the train_\* options out'):
        load_tool('test.py').main([
            str(REPO_ROOT / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'),
            '--cfg-options', 'train_dataloader.dataset.data_root=/x'])
    from mmovss.runtime import load_config
    cfg = load_config(REFINE, {'train_dataloader.dataset.pipeline.1.type': 'LoadSegAnnotations'})
    assert cfg.train_dataloader.dataset.pipeline[1].type == 'LoadSegAnnotations'  # lists as before


def test_user_errors_of_test_and_train_are_one_line(tmp_path, capsys):
    """Before: tracebacks for a trained model name without weights, a missing
    config, --amp on CPU (``run_tool`` is what both tools run as commands)."""
    from mmovss.runtime import run_tool
    test, train = load_tool('test.py').main, load_tool('train.py').main
    runs = [
        (test, [REFINE], 'is a trained model'),
        (test, ['configs/ovshapes/nope.py'], 'does not exist'),
        (train, [REFINE, '--amp', '--work-dir', str(tmp_path / 'w')], '--amp needs a GPU'),
    ]
    if torch.cuda.is_available():
        runs.pop()
    for main, args, message in runs:
        with pytest.raises(SystemExit) as info:
            run_tool(main, args)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and message in err, err[-2000:]
    assert 'run_tool(main)' in (REPO_ROOT / 'tools/test.py').read_text()  # as commands
    assert 'run_tool(main)' in (REPO_ROOT / 'tools/train.py').read_text()


def test_show_dir_draws_every_image(tmp_path):
    """SegVisualizationHook's default interval (50) drew nothing for a small
    test set; --show-dir now draws every image (--show-interval N)."""
    from mmovss.ovshapes.writer import write_world
    write_world(tmp_path / 'world', seed=6, num_train=0, num_val=3)
    load_tool('test.py').main([
        str(REPO_ROOT / 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'),
        '--show-dir', str(tmp_path / 'vis'), '--work-dir', str(tmp_path / 'w'),
        '--cfg-options', f'test_dataloader.dataset.data_root={tmp_path / "world"}'])
    drawn = [p for p in (tmp_path / 'vis').rglob('*.png')]
    assert len(drawn) == 3, drawn


def test_out_keeps_predictions_of_images_with_the_same_name(tmp_path):
    """tools/test.py --out named predictions by file name only: val/a/0.png and
    val/b/0.png wrote one file, the second replacing the first."""
    import numpy as np
    from PIL import Image

    from mmovss.evaluation.ov_iou_metric import OpenVocabIoUMetric
    metric = OpenVocabIoUMetric(output_dir=str(tmp_path / 'out'), format_only=True)
    metric.dataset_meta = dict(classes=['sky', 'grass'])
    samples = [dict(img_path=f'/data/val/{d}/0.png',
                    pred_sem_seg=dict(data=torch.full((1, 2, 2), v))) for d, v in (('a', 0),
                                                                                  ('b', 1))]
    metric.process({}, samples)
    metric.process({}, samples[:1])  # the same image again: the same name
    written = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert written == ['0.png', 'b__0.png']
    assert np.asarray(Image.open(tmp_path / 'out/0.png')).max() == 0
    assert np.asarray(Image.open(tmp_path / 'out/b__0.png')).min() == 1


def test_resume_past_max_iters_says_nothing_is_left(tmp_path, monkeypatch):
    """Before: exit code 0 without training and without a word."""
    train = load_tool('train.py')
    monkeypatch.setattr(train.Runner, 'from_cfg',
                        lambda *a, **k: pytest.fail('built the runner before refusing'))
    _save(tmp_path / 'iter_8.pth', 8)
    with pytest.raises(SystemExit, match=r'at iteration 8 .*max_iters=4: nothing is left'):
        train.main([REFINE, '--work-dir', str(tmp_path), '--resume',
                    '--cfg-options', 'train_cfg.max_iters=4'])


def test_a_checkpoint_trained_with_other_model_settings_is_warned_about(tmp_path, capsys):
    """NACLIP's and ClearCLIP's light decoders have the same parameter names:
    tools/test.py scored one's checkpoint under the other's config without a
    word (17.62 vs 22.54 mIoU in the audit)."""
    from mmovss.ovshapes.writer import write_world
    from mmovss.runtime import checkpoint_model_config

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    trained_cfg = Config.fromfile(REFINE)
    model = MODELS.build(trained_cfg.model)
    checkpoint = tmp_path / 'naclip.pth'
    torch.save({'state_dict': model.state_dict(),
                'meta': {'cfg': trained_cfg.pretty_text +
                         f'\nopen({str(tmp_path / "ran")!r}, "w")\n'}},
               checkpoint)
    assert checkpoint_model_config(str(checkpoint))['backbone']['last_block_mode'] == 'naclip'
    write_world(tmp_path / 'world', seed=6, num_train=0, num_val=2)
    other = str(REPO_ROOT / 'configs/ovshapes/dense-refine_tiny-clip-clearclip_1k_ovshapes-seen.py')
    options = ['--cfg-options', f'test_dataloader.dataset.data_root={tmp_path / "world"}']
    test = load_tool('test.py')
    test.main([other, str(checkpoint), '--work-dir', str(tmp_path / 'w1'), *options])
    text = ''.join(capsys.readouterr())
    assert "model.backbone.last_block_mode: 'naclip' (trained) vs 'clearclip'" in text
    test.main([REFINE, str(checkpoint), '--work-dir', str(tmp_path / 'w2'), *options])
    assert 'trained with other model settings' not in ''.join(capsys.readouterr())
    assert not (tmp_path / 'ran').exists()  # the checkpoint's config text is never run


def test_strict_loader_offers_non_strict_only_where_the_caller_has_it(tmp_path):
    """The loader's mismatch error ended with "Pass --non-strict ..." for every
    caller, also tools without that flag (vocabulary_report.py,
    build_region_data.py); three callers cut it off by string matching."""
    from mmovss.runtime import NON_STRICT_HINT, load_model_checkpoint_strictly
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': torch.nn.Linear(2, 3).state_dict()}, path)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(RuntimeError, match='does not fit the model') as err:
        load_model_checkpoint_strictly(model, path)
    assert '--non-strict' not in str(err.value)
    assert 'missing keys (e.g. 0.weight' in str(err.value)
    with pytest.raises(RuntimeError) as err:
        load_model_checkpoint_strictly(model, path, hint=NON_STRICT_HINT)
    assert str(err.value).endswith(NON_STRICT_HINT)
    with pytest.raises(RuntimeError) as err:  # the loader of releases without some parts
        load_model_checkpoint_strictly(model, path, absent_prefixes=('1.',), hint=NON_STRICT_HINT)
    assert str(err.value).endswith(NON_STRICT_HINT)


def test_a_fixed_vocabulary_is_checked_against_the_test_set(tmp_path, make_ovshapes_world):
    """The per-benchmark configs with a fixed name list (sclip_vit-b16_voc21.py)
    have no DatasetVocabularyHook; a child config that swapped their dataset by
    inheritance kept the old names silently (every prediction a valid label)."""
    from mmovss.testing.tools import work_dir_log
    child = tmp_path / 'fixed_names_other_data.py'
    child.write_text(
        f"_base_ = {str(REPO_ROOT / 'configs/ovshapes/naclip_tiny-clip_ovshapes.py')!r}\n"
        "custom_hooks = []\n"
        "model = dict(vocabulary=['sky', 'grass', 'sand', 'wall', 'plain red'])\n")
    world = make_ovshapes_world(num_val=3, seed=7)
    main = load_tool('test.py').main
    with pytest.raises(ValueError, match=r'explicit vocabulary .*5 classes.* does not match '
                                         r'the test dataset'):
        main([str(child), '--work-dir', str(tmp_path / 'w'), '--cfg-options',
              f'test_dataloader.dataset.data_root={world}'])
    assert 'DatasetVocabularyHook' in work_dir_log(tmp_path / 'w')


def test_resume_with_another_batch_size_is_said(tmp_path):
    """Resuming with another train_dataloader.batch_size was accepted without a
    note: the schedule goes on as written for the old batch, and mmengine
    skips the data already seen by iterations of the new size."""
    from mmovss.runtime import warn_if_resumed_with_another_batch_size

    from mmengine.config import Config
    cfg = Config.fromfile(REFINE)
    checkpoint = tmp_path / 'iter_4.pth'
    torch.save({'state_dict': {}, 'meta': {'iter': 4, 'cfg': cfg.pretty_text}}, checkpoint)
    trained = cfg.train_dataloader.batch_size
    cfg.load_from = str(checkpoint)
    assert warn_if_resumed_with_another_batch_size(cfg) is None  # the same size: nothing said
    cfg.train_dataloader.batch_size = trained + 2
    text = warn_if_resumed_with_another_batch_size(cfg)
    assert f'trained with train_dataloader.batch_size={trained}, this run uses {trained + 2}' \
        in text


@pytest.mark.parametrize('tool, config', [
    ('test.py', 'configs/naclip/naclip_vit-b16_ade20k_150.py'),
    ('train.py', 'configs/catseg/catseg_vit-b16_80k_coco-stuff171-384x384.py'),
])
def test_offline_clip_tag_is_the_only_output(tool, config, tmp_path, monkeypatch, capsys):
    """Offline, a CLIP tag that needs a download was reported after mmengine's
    environment report and the whole config (283 lines for NACLIP), when the
    runner built the model; now before the runner, as one line."""
    from mmovss.models.utils import open_clip_weights
    from mmovss.runtime import run_tool
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(open_clip_weights, '_cached_tag_file', lambda *a, **k: None)
    module = load_tool(tool)
    monkeypatch.setattr(module.Runner, 'from_cfg', lambda *a, **k: pytest.fail(
        'the runner was built before the CLIP weights were looked for'))
    with pytest.raises(SystemExit) as info:
        run_tool(module.main, [str(REPO_ROOT / config), '--work-dir', str(tmp_path / 'w')])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ''
    error, hint = captured.err.splitlines()  # the message, then MMOVSS_TRACEBACK's hint
    assert error.startswith("error: open_clip pretrained weights 'openai' of model "
                            "'ViT-B-16' are not in the local cache"), error
    assert '--cfg-options model.backbone.pretrained=/path/to/ViT-B-16.pt' in error
    assert 'MMOVSS_TRACEBACK=1' in hint
