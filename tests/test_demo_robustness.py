"""tools/demo.py on user mistakes and odd images (offline, tiny files).

User mistakes give one ``error: ...`` naming the input and the fix, exit
code 2 and no traceback; the checks that need no model run before it is
built (the ``no_model`` fixture makes building it fail the test). Genuine
internal errors keep their traceback.
"""
import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mmovss.models.utils import open_clip_weights
from mmovss.testing.tools import load_tool
from mmovss.visualization import OpenVocabVisualizer, draw_legend, legend_entries
from mmovss.visualization.legend import LegendEntry

CONFIG = 'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py'


@pytest.fixture(scope='module')
def demo_module():
    return load_tool('demo.py')


@pytest.fixture
def demo(demo_module):
    return demo_module.main


@pytest.fixture
def no_model(demo_module, monkeypatch):
    """Building the model fails the test: the error must come before it."""
    def build(*args, **kwargs):
        raise AssertionError('the model was built before the bad input was refused')
    monkeypatch.setattr(demo_module, 'OpenVocabInferencer', build)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'in' / 'a.png'
    path.parent.mkdir()
    cv2.imwrite(str(path), np.full((8, 8, 3), 90, np.uint8))
    return path


def _refused(demo, argv, capsys, *needles):
    assert demo(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'Traceback' not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _parser_refuses(demo, argv, capsys, *needles):
    with pytest.raises(SystemExit) as exit_info:
        demo(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err


# ------------------------------------------------------------ 1 (a) weights
def test_offline_clip_tag_is_a_clean_error(demo, image, monkeypatch, capsys):
    """``-m sclip`` without network: PretrainedWeightsUnavailable's message,
    not 19 frames of traceback before it."""
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(open_clip_weights, '_cached_tag_file', lambda *a, **k: None)
    err = _refused(demo, [str(image), '-v', 'cat; grass', '-m', 'sclip'], capsys,
                   "pretrained weights 'openai'", 'model.backbone.pretrained=')
    assert err.count('\n') == 1, err  # one line (it was six: the fixes on lines of their own)


def test_unreadable_clip_file_is_a_clean_error(demo, image, tmp_path, capsys):
    bad = tmp_path / 'BAD.pt'
    bad.write_bytes(b'not a checkpoint')
    _refused(demo, [str(image), '-v', 'sky; grass', '-c', CONFIG, '--cfg-options',
                    f'model.backbone.pretrained={bad}', f'model.text_encoder.pretrained={bad}'],
             capsys, 'Cannot read CLIP checkpoint', str(bad))


def test_unreadable_vfm_file_is_a_weight_file_error(tmp_path):
    """ProxyCLIP's VFM file: torch.load's UnpicklingError was let out as is."""
    from mmovss.models.backbones.proxyclip_vit import build_timm_vfm
    bad = tmp_path / 'dino.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(open_clip_weights.WeightFileError, match='Cannot read VFM weight file'):
        build_timm_vfm('vit_small_patch8_224.dino', pretrained=str(bad),
                       model_kwargs=dict(embed_dim=32, depth=1, num_heads=2, img_size=32))


def test_uncached_timm_vfm_offline_fails_at_once(monkeypatch):
    """ProxyCLIP offline: timm's DINO not cached and huggingface.co unreachable
    is reported before timm is asked (huggingface_hub retried for ~25 s first)."""
    import huggingface_hub
    import timm

    from mmovss.models.backbones import proxyclip_vit
    calls = []
    real_create = timm.create_model

    def create_model(*args, **kwargs):
        calls.append(kwargs.get('pretrained'))
        if kwargs.get('pretrained'):
            raise OSError('would download')
        return real_create(*args, **kwargs)
    monkeypatch.setattr(timm, 'create_model', create_model)
    monkeypatch.setattr(huggingface_hub, 'try_to_load_from_cache', lambda *a, **k: None)
    monkeypatch.setattr(proxyclip_vit, '_host_reachable',
                        lambda host: (False, f'{host} is unreachable: test'), raising=False)
    with pytest.raises(open_clip_weights.WeightFileError,
                       match=r'huggingface.co is unreachable: test.*vfm\.pretrained='):
        proxyclip_vit.build_timm_vfm('vit_small_patch8_224.dino', pretrained=True)
    assert True not in calls


def test_internal_runtime_errors_keep_their_traceback(demo, demo_module, image,
                                                      monkeypatch):
    def build(*args, **kwargs):
        raise RuntimeError('an internal bug')
    monkeypatch.setattr(demo_module, 'OpenVocabInferencer', build)
    with pytest.raises(RuntimeError, match='an internal bug'):
        demo([str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny'])


# ------------------------------------------------------------ 1 (b) batch size
@pytest.mark.parametrize('value', ['0', '-2', 'two'])
def test_bad_batch_size_is_refused_by_the_parser(demo, image, no_model, capsys, value):
    _parser_refuses(demo, [str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                           '--batch-size', value], capsys, '--batch-size', value)


# ------------------------------------------------------------ 1 (c) empty folder
@pytest.mark.parametrize('files', [[], ['notes.txt']])
def test_folder_without_images_without_out(demo, tmp_path, no_model, capsys, files):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in files:
        (folder / name).write_text('x')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        _refused(demo, [str(folder), '-v', 'sky; grass', '-m', 'ovshapes-tiny'], capsys,
                 'holds no image files', str(folder))


# ------------------------------------------------------------ 1 (d) device
def test_unknown_device_is_refused(demo, image, no_model, capsys):
    _parser_refuses(demo, [str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                           '--device', 'foo'], capsys, "--device 'foo'", 'cpu')


def test_cuda_without_gpu_is_refused(demo, image, no_model, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    _parser_refuses(demo, [str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                           '--device', 'cuda'], capsys, "--device 'cuda'", '--device cpu')


def test_missing_cuda_index_is_refused(demo, image, no_model, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    _parser_refuses(demo, [str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                           '--device', 'cuda:3'], capsys, "--device 'cuda:3'", '1 CUDA device')


# ------------------------------------------------------------ 1 (e) not a config
def test_a_file_that_is_no_config_is_refused(demo, image, tmp_path, no_model, capsys):
    notes = tmp_path / 'README.md'
    notes.write_text('# not a config\n')
    for flag in ('-c', '-m'):
        _refused(demo, [str(image), '-v', 'sky; grass', flag, str(notes)], capsys,
                 str(notes), 'a config must be a .py')


# ------------------------------------------------------------ 1 (f) --out under a file
def test_out_under_a_file_is_refused_before_the_model(demo, image, no_model, capsys):
    out = image / 'sub'
    _refused(demo, [str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny', '--out',
                    str(out)], capsys, str(out), f"'{image}' is a file, not a folder")
    assert image.is_file()


# ------------------------------------------------------------ 2 one-pixel images
@pytest.mark.parametrize('shape', [(1, 1), (1, 6), (6, 1)])
def test_visualizer_draws_images_one_pixel_wide(shape):
    visualizer = OpenVocabVisualizer(name=f'test_one_pixel_{shape[0]}x{shape[1]}')
    visualizer.set_vocabulary(['sky', 'grass', 'sand'])
    palette = np.array(visualizer.dataset_meta['palette'], np.uint8)
    labels = (np.arange(shape[0] * shape[1]).reshape(shape) + 1) % 3
    image = np.full(shape + (3,), 100, np.uint8)
    drawn = visualizer.draw_prediction(image, torch.from_numpy(labels))
    expected = (image * 0.5 + palette[labels] * 0.5).astype(np.uint8)
    np.testing.assert_array_equal(drawn[:shape[0], :shape[1]], expected)
    entries = legend_entries(labels, ['sky', 'grass', 'sand'], palette.tolist())
    assert [e.label for e in visualizer.last_legend] == [e.label for e in entries]
    visualizer.with_legend = False
    np.testing.assert_array_equal(visualizer.draw_prediction(image, labels), expected)


def test_demo_writes_one_pixel_images(demo, tmp_path, capsys):
    folder = tmp_path / 'pixels'
    folder.mkdir()
    for name, bgr in (('green', (0, 160, 0)), ('blue', (230, 160, 90))):
        cv2.imwrite(str(folder / f'{name}.png'), np.array([[bgr]], np.uint8))
    cv2.imwrite(str(folder / 'row.png'), np.tile(np.uint8([[[0, 160, 0]]]), (1, 7, 1)))
    out = tmp_path / 'out'
    assert demo([str(folder), '-v', 'sky; grass', '-m', 'ovshapes-tiny', '--out',
                 str(out)]) == 0
    assert '"images": 3' in capsys.readouterr().out
    for name, shape in (('green', (1, 1)), ('blue', (1, 1)), ('row', (1, 7))):
        labels = np.array(Image.open(out / 'pred' / f'{name}.png'))
        assert labels.shape == shape and labels.max() <= 1
        assert np.array(Image.open(out / 'vis' / f'{name}.png')).shape[1] > shape[1]


# ------------------------------------------------------------ 3 one-class file
@pytest.mark.parametrize('text', ['sky\n', '# a comment\nsky, heaven\n'])
def test_one_class_vocabulary_file_is_refused(demo, image, tmp_path, no_model, capsys,
                                              text):
    path = tmp_path / 'classes.txt'
    path.write_text(text)
    _refused(demo, [str(image), '--vocabulary-file', str(path), '-m', 'ovshapes-tiny'],
             capsys, str(path), 'names one class', 'at least two classes')


def test_two_class_vocabulary_file_is_read(tmp_path):
    from mmovss.apis.vocabulary_text import vocabulary_from_file
    path = tmp_path / 'classes.txt'
    path.write_text('sky, heaven\ngrass\n')
    assert list(vocabulary_from_file(path).class_names) == ['sky', 'grass']


# ------------------------------------------------------------ 4 warning once
def test_skipped_files_are_reported_once(demo, image, tmp_path, capsys):
    (image.parent / 'readme.txt').write_text('not an image')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert demo([str(image.parent), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                     '--out', str(tmp_path / 'out')]) == 0
    skipped = [w for w in caught if 'Skipped 1 file(s)' in str(w.message)]
    assert len(skipped) == 1, [str(w.message) for w in skipped]
    assert 'readme.txt' in str(skipped[0].message)


# ------------------------------------------------------------ 5 legend glyphs
def _legend(name):
    return draw_legend([LegendEntry(0, name, (200, 0, 0), 1.0)], 40, font_size=16,
                       show_area=False)


def test_legend_draws_accented_greek_and_cyrillic_letters():
    """Pillow's default font has ASCII only: ``é`` came out as the same box
    as any unknown character (here U+E000, a private-use code point)."""
    for word, base in (('café', 'caf'), ('Кот', ''), ('αβ', '')):
        missing = base + '\ue000' * (len(word) - len(base))
        assert not np.array_equal(_legend(word), _legend(missing)), word
    assert not np.array_equal(_legend('café'), _legend('cafe'))


def test_a_very_long_class_name_is_cut_in_the_legend():
    """A pasted paragraph as a class name made the overlay tens of thousands of
    pixels wide (a 5000-character name: 64 x 36930); the legend cuts it."""
    from mmovss.visualization.legend import MAX_NAME_CHARS
    long_name = 'striped red wall ' * 300
    wide = _legend(long_name)
    assert wide.shape[1] <= _legend('w' * MAX_NAME_CHARS).shape[1] + 20
    assert not np.array_equal(wide, _legend(long_name[:MAX_NAME_CHARS]))  # marked as cut


# ------------------------------------------------------------ trained weights
def test_trained_config_runs_with_load_from_or_allow_random_weights(demo, image, tmp_path,
                                                                    capsys):
    """The inferencer now checks trained weights itself (``load_from``
    counts); the demo keeps its message naming the flags, accepts
    ``--allow-random-weights`` and a checkpoint given as ``load_from``."""
    from mmovss.apis import OpenVocabInferencer
    trained = 'configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py'
    args = [str(image), '-v', 'sky; grass', '-c', trained]
    _refused(demo, args, capsys, 'is a trained model', '--weights')
    assert demo(args + ['--allow-random-weights']) == 0
    model = OpenVocabInferencer(trained, device='cpu', allow_random_weights=True).model
    checkpoint = tmp_path / 'trained.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    capsys.readouterr()
    assert demo(args + ['--cfg-options', f'load_from={checkpoint}']) == 0
    assert f'{image.stem}: ' in capsys.readouterr().out


def test_show_without_a_display_is_a_clean_error(demo, image, monkeypatch, capsys):
    """Before: the window waited forever on a machine without a display."""
    monkeypatch.delenv('DISPLAY', raising=False)
    monkeypatch.delenv('WAYLAND_DISPLAY', raising=False)
    assert demo([str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny', '--show']) == 2
    assert 'needs a display' in capsys.readouterr().err
