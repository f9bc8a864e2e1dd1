"""A legend of the classes present in a label map, drawn beside an overlay.

Open vocabularies are long and user-made, so colours alone do not say what a
region is. The legend lists exactly the classes that occur in the prediction,
largest area first, each as a colour swatch, its name and its share of the
image. :func:`legend_entries` decides the rows; :func:`draw_legend` paints
them and records where each swatch is, so that the picture can be checked.

DejaVu Sans (the default) has no CJK glyphs: a name it cannot draw is drawn
with an installed font that can (Noto Sans CJK, WenQuanYi, ... found by
fontconfig or matplotlib), or with the font the caller passes (``font=``,
the inferencer's ``legend_font=``, ``--legend-font``); when none can, the
legend warns once per script instead of drawing boxes silently.
"""
import functools
import glob
import importlib.util
import os.path as osp
import shutil
import subprocess
import unicodedata
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmovss.io.file_memo import memoised_per_file_version

__all__ = ['LegendEntry', 'legend_entries', 'draw_legend', 'legend_font_size',
           'check_font_file', 'font_missing_chars']

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
MAX_NAME_CHARS = 48
"""Longer class names are cut to this many characters (ending in ``…``) in
the legend: a pasted paragraph would make the picture tens of thousands of
pixels wide. The vocabulary and the ``.json`` outputs keep the whole name."""


def _shorten(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARS else name[:MAX_NAME_CHARS - 1].rstrip() + '…'


@dataclass
class LegendEntry:
    """One row of the legend.

    Attributes:
        label (int): Class index in the vocabulary.
        name (str): Display name.
        color (tuple[int, int, int]): RGB colour of the class.
        area (float): Share of the image's pixels, in [0, 1].
        swatch (tuple[int, int, int, int]): ``(x1, y1, x2, y2)`` of the colour
            swatch in the legend panel (exclusive ends); set by
            :func:`draw_legend`.
    """
    label: int
    name: str
    color: Tuple[int, int, int]
    area: float
    swatch: Tuple[int, int, int, int] = (0, 0, 0, 0)


def legend_entries(sem_seg: np.ndarray, classes: Sequence[str],
                   palette: Sequence[Sequence[int]]) -> List[LegendEntry]:
    """The classes present in ``sem_seg``, largest first (ties: lower label).

    Args:
        sem_seg (np.ndarray): (H, W) integer labels; values outside
            ``[0, len(classes))`` (ignore labels) are not classes.
        classes (Sequence[str]): Display name of every class.
        palette (Sequence): RGB colour of every class.
    """
    num_classes = len(classes)
    labels = np.asarray(sem_seg).reshape(-1).astype(np.int64)
    labels = labels[(labels >= 0) & (labels < num_classes)]
    counts = np.bincount(labels, minlength=num_classes)
    total = max(int(np.asarray(sem_seg).size), 1)
    order = sorted(np.flatnonzero(counts), key=lambda c: (-counts[c], c))
    return [
        LegendEntry(int(c), str(classes[c]),
                    tuple(int(v) for v in palette[c]), float(counts[c] / total))
        for c in order
    ]


def legend_font_size(image_height: int) -> int:
    """A font size that suits an image height (12 to 28 pixels)."""
    return int(np.clip(image_height // 24, 12, 28))


def _font_files() -> List[str]:
    """TrueType fonts with Latin, Greek and Cyrillic letters, best first:
    DejaVu Sans as bundled with matplotlib (a dependency of mmengine), then
    the system's copy. Pillow's own default font draws only ASCII (a box for
    ``é``), so it is the last resort. DejaVu has no CJK glyphs."""
    files = []
    spec = importlib.util.find_spec('matplotlib')
    if spec is not None and spec.origin:
        files.append(osp.join(osp.dirname(spec.origin), 'mpl-data', 'fonts', 'ttf',
                              'DejaVuSans.ttf'))
    files.append('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf')
    return files


@memoised_per_file_version
def _truetype(path: str, size: int) -> ImageFont.FreeTypeFont:
    """The font file at ``path`` loaded at ``size`` pixels, once per version
    of the file (a legend per image does not read it again; a file rewritten
    since is read anew).

    Raises:
        OSError: No such file, or FreeType cannot read it.
        ImportError: Pillow without FreeType.
    """
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=None)
def _font_file() -> Optional[str]:
    """The first of :func:`_font_files` that FreeType reads, else None."""
    for path in _font_files():
        if osp.isfile(path):
            try:
                ImageFont.truetype(path, 12)
            except (OSError, ImportError):  # unreadable file, Pillow without FreeType
                continue
            return path
    return None


def check_font_file(path: str) -> str:
    """``path`` if FreeType reads it as a font (TTF / OTF / TTC).

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is not a font Pillow can read.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'Legend font {path!r} does not exist (pass a .ttf, .otf '
                                f'or .ttc file, e.g. one listed by `fc-list :lang=zh`).')
    try:
        _truetype(path, 12)
    except (OSError, ImportError) as e:
        raise ValueError(f'Legend font {path!r} cannot be read as a TrueType/OpenType '
                         f'font ({e}).') from None
    return path


@memoised_per_file_version
def _font_chars(path: str) -> Optional[frozenset]:
    """Code points the font maps to a glyph (its cmap), None when unknown;
    read once per version of the file."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:  # fontTools comes with matplotlib, but is optional here
        return None
    try:
        with TTFont(path, fontNumber=0, lazy=True) as tt:
            cmap = tt.getBestCmap() or {}
    except Exception:  # noqa: BLE001 - any unreadable font: coverage unknown
        return None
    return frozenset(cmap)


def _notdef_like(path: str, ch: str) -> bool:
    """Without fontTools: Pillow draws ``ch`` as the font's box (the glyph of
    a private-use code point, which fonts leave empty)."""
    font = _truetype(path, 24)

    def drawn(c):
        img = Image.new('L', (48, 48))
        ImageDraw.Draw(img).text((8, 8), c, fill=255, font=font)
        return img.tobytes()

    return drawn(ch) == drawn('\ue000')


def _needs_glyph(ch: str) -> bool:
    return not ch.isspace() and unicodedata.category(ch)[0] != 'C'


def font_missing_chars(path: Optional[str], text: str) -> List[str]:
    """The characters of ``text`` the font at ``path`` has no glyph for, in
    order of first use (spaces and control characters are not counted).
    ``path=None`` is Pillow's default font: every non-ASCII character."""
    seen = []
    for ch in text:
        if ch not in seen and _needs_glyph(ch):
            seen.append(ch)
    if path is None:
        return [ch for ch in seen if ord(ch) > 126]
    chars = _font_chars(path)
    if chars is None:
        return [ch for ch in seen if _notdef_like(path, ch)]
    return [ch for ch in seen if ord(ch) not in chars]


# Fonts with CJK (and more) glyphs at the places Debian / Ubuntu / Fedora /
# Arch / macOS / Windows put them; fontconfig and matplotlib are asked too.
_FALLBACK_GLOBS = (
    '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc',
    '/usr/share/fonts/**/NotoSansCJK*-Regular.tt[cf]',
    '/usr/share/fonts/**/NotoSans[SJKT]C-Regular.[ot]tf',
    '/usr/share/fonts/**/NotoSansCJK*.[ot]t[cf]',
    '/usr/share/fonts/**/SourceHanSans*.[ot]t[cf]',
    '/usr/share/fonts/**/wqy-microhei.ttc',
    '/usr/share/fonts/**/wqy-zenhei.ttc',
    '/usr/share/fonts/**/DroidSansFallback*.ttf',
    '/usr/share/fonts/**/NanumGothic.ttf',
    '/System/Library/Fonts/PingFang.ttc',
    '/System/Library/Fonts/Hiragino Sans GB.ttc',
    '/Library/Fonts/Arial Unicode.ttf',
    'C:/Windows/Fonts/msyh.ttc',
    'C:/Windows/Fonts/msgothic.ttc',
    'C:/Windows/Fonts/malgun.ttf',
)
_FALLBACK_NAMES = ('cjk', 'noto sans sc', 'noto sans jp', 'noto sans kr', 'han sans',
                   'wenquanyi', 'wqy', 'droid sans fallback', 'unifont', 'arial unicode')


def _fc(args: List[str]) -> List[str]:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _fallback_candidates(chars: Tuple[str, ...]):
    """Font files that may draw ``chars``, likeliest first (not yet checked)."""
    for pattern in _FALLBACK_GLOBS:
        yield from sorted(glob.glob(pattern, recursive=True))
    if shutil.which('fc-list'):  # fontconfig: the fonts that have these characters
        charset = ' '.join(f'{ord(c):x}' for c in chars[:8])
        yield from _fc(['fc-list', f':charset={charset}', 'file', '--format=%{file}\n'])
    if shutil.which('fc-match'):
        for lang in ('zh', 'ja', 'ko'):
            yield from _fc(['fc-match', '--format=%{file}\n', f':lang={lang}'])
    try:
        from matplotlib import font_manager
        for entry in font_manager.fontManager.ttflist:
            if any(n in entry.name.lower() for n in _FALLBACK_NAMES):
                yield entry.fname
    except Exception:  # noqa: BLE001 - no matplotlib / an unreadable font cache
        return


@functools.lru_cache(maxsize=None)
def _find_font(chars: Tuple[str, ...]) -> Optional[str]:
    """An installed font that has a glyph for each of ``chars``, else None."""
    tried = set()
    for path in _fallback_candidates(chars):
        if path in tried or not osp.isfile(path):
            continue
        tried.add(path)
        try:
            ImageFont.truetype(path, 12)
            if not font_missing_chars(path, ''.join(chars)):
                return path
        except (OSError, ImportError):
            continue
    return None


_WARNED_SCRIPTS = set()


def _script(ch: str) -> str:
    name = unicodedata.name(ch, '')
    return name.split()[0] if name else f'U+{ord(ch):04X}'


def _warn_missing(name: str, missing: List[str], font: Optional[str]) -> None:
    """One warning per script (CJK, HANGUL, ...) per process."""
    scripts = sorted({_script(ch) for ch in missing} - _WARNED_SCRIPTS)
    if not scripts:
        return
    _WARNED_SCRIPTS.update(scripts)
    which = (f'the legend font {font!r} lacks them' if font else
             'DejaVu Sans lacks them and no installed font has them')
    warnings.warn(
        f'The legend cannot draw the {"/".join(scripts)} characters '
        f'{"".join(missing[:8])!r} of class name {name!r}: {which}, so they '
        f'show as boxes. Install a font that has them (e.g. `apt install '
        f'fonts-noto-cjk` for Chinese / Japanese / Korean) or pass one: '
        f'--legend-font PATH (tools/demo.py, tools/webui.py), legend_font=PATH '
        f'(OpenVocabInferencer call), font=PATH (draw_legend), '
        f'OpenVocabVisualizer.legend_font.', UserWarning, stacklevel=4)


def _font(size: int, path: Optional[str] = None):
    path = path if path is not None else _font_file()
    if path is not None:
        return _truetype(path, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _row_fonts(names: List[str], font: Optional[str]) -> List[Optional[str]]:
    """The font file of each row: ``font`` if given, else DejaVu, or for a
    name DejaVu cannot draw an installed font that can. Warns (once per
    script) when no font has the characters."""
    base = font if font is not None else _font_file()
    paths = []
    for name in names:
        missing = font_missing_chars(base, name)
        path = base
        found = _find_font(tuple(missing)) if missing and font is None else None
        if found is not None:
            path, missing = found, []
        if missing:
            _warn_missing(name, missing, font)
        paths.append(path)
    return paths


def _percent(area: float) -> str:
    return f'{100 * area:.1f}%' if area >= 0.0005 else '<0.1%'


def draw_legend(entries: List[LegendEntry], height: int,
                font_size: Optional[int] = None,
                show_area: bool = True,
                font: Optional[str] = None) -> np.ndarray:
    """Paints the legend rows on a white panel.

    Args:
        entries (list[LegendEntry]): Rows, top to bottom; their ``swatch``
            boxes are filled in.
        height (int): Minimum panel height (the image's); the panel grows
            when the rows need more.
        font_size (int, optional): Text size; by default from ``height``.
        show_area (bool): Append the area share (``"sky 41.2%"``).
            Names longer than :data:`MAX_NAME_CHARS` are cut, ending in
            ``…``.
        font (str, optional): A TTF / OTF / TTC file for the text. By
            default DejaVu Sans, and for names it has no glyphs for (CJK)
            an installed font that has them. A name no font can draw warns
            once (per script) rather than being boxes silently. The file is
            read once per size (again when it is rewritten), not per legend.

    Returns:
        np.ndarray: (H', W', 3) uint8 RGB panel, ``H' >= height``.
    """
    size = font_size or legend_font_size(height)
    if font is not None:
        font = check_font_file(font)
    pad, gap = max(size // 2, 4), max(size // 3, 3)
    row = size + gap
    texts = [f'{_shorten(e.name)} {_percent(e.area)}' if show_area else _shorten(e.name)
             for e in entries]
    paths = _row_fonts([_shorten(e.name) for e in entries], font)
    loaded = {p: _font(size, p) for p in set(paths)}
    fonts = [loaded[p] for p in paths]
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_w = max([probe.textlength(t, font=f) for t, f in zip(texts, fonts)] + [0])
    width = int(pad + size + gap + text_w + pad)
    panel_h = max(height, pad * 2 + row * len(entries))
    panel = Image.new('RGB', (width, panel_h), BACKGROUND)
    draw = ImageDraw.Draw(panel)
    for i, (entry, text, row_font) in enumerate(zip(entries, texts, fonts)):
        y = pad + i * row
        box = (pad, y, pad + size, y + size)
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1),
                       fill=entry.color)
        draw.text((pad + size + gap, y), text, fill=TEXT, font=row_font)
        entry.swatch = box
    return np.asarray(panel, dtype=np.uint8).copy()
