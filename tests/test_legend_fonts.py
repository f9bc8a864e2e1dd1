"""Legend names in scripts DejaVu Sans lacks (CJK): another installed font,
a font the user passes (``font=`` / ``--legend-font``), or one warning per
script, never boxes drawn silently."""
import os.path as osp
import shutil
import warnings

import cv2
import numpy as np
import pytest
from PIL import ImageFont

from mmovss.testing.tools import load_tool
from mmovss.visualization import OpenVocabVisualizer, draw_legend
from mmovss.visualization import legend as legend_module
from mmovss.visualization.legend import LegendEntry, font_missing_chars

DEJAVU = legend_module._font_file()
needs_dejavu = pytest.mark.skipif(DEJAVU is None, reason='no DejaVu Sans here')
BOLD = osp.join(osp.dirname(DEJAVU), 'DejaVuSans-Bold.ttf') if DEJAVU else ''


def _legend(*names, **kwargs):
    entries = [LegendEntry(i, n, (200, 0, 0), 1.0 / len(names)) for i, n in enumerate(names)]
    return draw_legend(entries, 40, font_size=16, show_area=False, **kwargs)


def _drawn_with_warnings(*names, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        panel = _legend(*names, **kwargs)
    return panel, [str(w.message) for w in caught if 'legend cannot draw' in str(w.message)]


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(legend_module, '_WARNED_SCRIPTS', set())


@needs_dejavu
def test_coverage_detection_dejavu_lacks_cjk_has_latin():
    assert font_missing_chars(DEJAVU, '猫') == ['猫']
    assert font_missing_chars(DEJAVU, 'café Кот αβ') == []
    assert font_missing_chars(DEJAVU, 'black 猫 猫, 犬') == ['猫', '犬']
    # the Pillow-only check (no fontTools) agrees
    assert legend_module._notdef_like(DEJAVU, '猫')
    assert not legend_module._notdef_like(DEJAVU, 'é')


@needs_dejavu
def test_cjk_name_without_a_covering_font_warns_once(monkeypatch, fresh_warnings):
    """Before: the name came out as boxes, with no message."""
    monkeypatch.setattr(legend_module, '_find_font', lambda chars: None)
    panel, said = _drawn_with_warnings('猫', 'sky')
    assert len(said) == 1, said
    assert 'CJK' in said[0] and "'猫'" in said[0]
    assert 'fonts-noto-cjk' in said[0] and '--legend-font' in said[0]
    assert panel.shape[0] >= 40  # drawn as before
    _, again = _drawn_with_warnings('黑猫')  # once per script
    assert again == []
    _, hangul = _drawn_with_warnings('고양이')  # another script: its own warning
    assert len(hangul) == 1 and 'HANGUL' in hangul[0]


@needs_dejavu
def test_cjk_name_uses_a_font_found_for_it(monkeypatch, fresh_warnings):
    asked = []

    def find(chars):
        asked.append(chars)
        return DEJAVU  # stands in for an installed CJK font

    monkeypatch.setattr(legend_module, '_find_font', find)
    _, said = _drawn_with_warnings('猫', 'café')
    assert said == [] and asked == [('猫',)]  # only the name DejaVu lacks


@needs_dejavu
def test_latin_names_need_no_search(monkeypatch, fresh_warnings):
    monkeypatch.setattr(legend_module, '_find_font',
                        lambda chars: pytest.fail(f'searched a font for {chars}'))
    _, said = _drawn_with_warnings('café', 'Кот', 'αβ', 'sky')
    assert said == []


@needs_dejavu
def test_a_given_font_is_used(monkeypatch):
    dejavu = _legend('café')
    monkeypatch.setattr(legend_module, '_font_file', lambda: None)  # default: Pillow's
    assert not np.array_equal(_legend('café'), dejavu)
    assert np.array_equal(_legend('café', font=DEJAVU), dejavu)


def test_a_missing_or_unreadable_font_is_a_clear_error(tmp_path):
    missing = tmp_path / 'NotoSansCJK.ttc'
    with pytest.raises(FileNotFoundError, match='NotoSansCJK.ttc'):
        _legend('cat', font=str(missing))
    bad = tmp_path / 'font.ttf'
    bad.write_text('not a font')
    with pytest.raises(ValueError, match='font.ttf'):
        _legend('cat', font=str(bad))
    vis = OpenVocabVisualizer(name='legend_font_test', classes=['cat'],
                              legend_font=str(missing))
    with pytest.raises(FileNotFoundError, match='NotoSansCJK.ttc'):
        vis.draw_prediction(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int64))



@pytest.fixture
def truetype_reads(monkeypatch):
    """The (file, size) of every ``ImageFont.truetype`` call from now on."""
    reads, real = [], ImageFont.truetype

    def counting(font, size=10, *args, **kwargs):
        reads.append((str(font), size))
        return real(font, size, *args, **kwargs)

    monkeypatch.setattr(ImageFont, 'truetype', counting)
    return reads


@pytest.mark.skipif(not osp.isfile(BOLD), reason='no DejaVu Sans Bold here')
def test_a_given_font_is_read_once_per_size_and_again_when_rewritten(tmp_path, monkeypatch,
                                                                     truetype_reads):
    """Before: every legend read the font file again (to check it, then to
    draw), a few ms per image."""
    font = tmp_path / 'legend.ttf'
    shutil.copyfile(DEJAVU, font)
    first = _legend('café', 'sky', font=str(font))
    assert truetype_reads and {f for f, _ in truetype_reads} == {str(font)}
    read = len(truetype_reads)
    second = _legend('café', 'sky', font=str(font))
    assert len(truetype_reads) == read  # not read again
    assert np.array_equal(second, first)
    entries = [LegendEntry(0, 'sky', (200, 0, 0), 1.0)]
    draw_legend(entries, 40, font_size=20, font=str(font))  # another size: loaded once
    draw_legend(entries, 40, font_size=20, font=str(font))
    assert truetype_reads[read:] == [(str(font), 20)]
    shutil.copyfile(BOLD, font)  # another font at the same path: read anew
    rewritten = _legend('café', 'sky', font=str(font))
    assert not np.array_equal(rewritten, first)
    assert np.array_equal(rewritten, _legend('café', 'sky', font=BOLD))
    # the same drawing as without the cache
    monkeypatch.setattr(legend_module, '_truetype', ImageFont.truetype)
    assert np.array_equal(_legend('café', 'sky', font=str(font)), rewritten)


# ------------------------------------------------------------ tools/demo.py
@pytest.fixture(scope='module')
def demo_module():
    return load_tool('demo.py')


def test_demo_refuses_a_missing_legend_font_before_building(demo_module, tmp_path,
                                                             monkeypatch, capsys):
    def build(*args, **kwargs):
        raise AssertionError('the model was built before the bad font was refused')
    monkeypatch.setattr(demo_module, 'OpenVocabInferencer', build)
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.full((8, 8, 3), 90, np.uint8))
    missing = tmp_path / 'nofont.ttf'
    assert demo_module.main([str(image), '-v', '猫; sky', '-m', 'ovshapes-tiny',
                             '--legend-font', str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'Traceback' not in err, err
    assert str(missing) in err


@needs_dejavu
def test_demo_passes_the_legend_font_to_the_visualizer(demo_module, tmp_path,
                                                       monkeypatch):
    used = []
    real = legend_module.draw_legend

    def spy(*args, **kwargs):
        used.append(kwargs.get('font'))
        return real(*args, **kwargs)

    monkeypatch.setattr('mmovss.visualization.open_vocab_visualizer.draw_legend', spy)
    image = tmp_path / 'a.png'
    cv2.imwrite(str(image), np.full((8, 8, 3), 90, np.uint8))
    assert demo_module.main([str(image), '-v', 'sky; grass', '-m', 'ovshapes-tiny',
                             '--out', str(tmp_path / 'out'),
                             '--legend-font', DEJAVU]) == 0
    assert used == [DEJAVU]


# ------------------------------------------------------------ the inferencer's call
@pytest.fixture
def legend_fonts_used(monkeypatch):
    """The ``font`` of every legend the visualizer draws from now on."""
    used, real = [], legend_module.draw_legend

    def spy(*args, **kwargs):
        used.append(kwargs.get('font'))
        return real(*args, **kwargs)

    monkeypatch.setattr('mmovss.visualization.open_vocab_visualizer.draw_legend', spy)
    return used


@pytest.fixture(scope='module')
def tiny_inferencer():
    from mmovss.apis import OpenVocabInferencer
    return OpenVocabInferencer('ovshapes-tiny', device='cpu')


@needs_dejavu
def test_the_inferencer_call_takes_a_legend_font(tiny_inferencer, legend_fonts_used,
                                                 monkeypatch, tmp_path):
    """Before: only ``inferencer.visualizer.legend_font = PATH`` set it."""
    image = np.full((8, 8, 3), 90, np.uint8)
    tiny_inferencer.visualizer.legend_font = None
    tiny_inferencer(image, vocabulary=['sky', 'grass'], return_vis=True, legend_font=DEJAVU)
    tiny_inferencer(image, return_vis=True)  # None keeps it, as for the vocabulary
    assert legend_fonts_used == [DEJAVU, DEJAVU]
    assert tiny_inferencer.visualizer.legend_font == DEJAVU
    monkeypatch.setattr(tiny_inferencer, '_predict',
                        lambda *a: pytest.fail('an image was segmented before the font check'))
    missing, bad = tmp_path / 'nofont.ttf', tmp_path / 'font.ttf'
    bad.write_text('not a font')
    with pytest.raises(FileNotFoundError, match='nofont.ttf'):
        tiny_inferencer(image, return_vis=True, legend_font=str(missing))
    with pytest.raises(ValueError, match='font.ttf.*cannot be read'):
        list(tiny_inferencer.stream(image, legend_font=str(bad)))
    assert tiny_inferencer.visualizer.legend_font == DEJAVU

