"""A legend of the classes present in a label map, drawn beside an overlay.

Open vocabularies are long and user-made, so colours alone do not say what a
region is. The legend lists exactly the classes that occur in the prediction,
largest area first, each as a colour swatch, its name and its share of the
image. :func:`legend_entries` decides the rows; :func:`draw_legend` paints
them and records where each swatch is, so that the picture can be checked.
"""
import functools
import importlib.util
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ['LegendEntry', 'legend_entries', 'draw_legend', 'legend_font_size']

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


def _font(size: int):
    path = _font_file()
    if path is not None:
        return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _percent(area: float) -> str:
    return f'{100 * area:.1f}%' if area >= 0.0005 else '<0.1%'


def draw_legend(entries: List[LegendEntry], height: int,
                font_size: Optional[int] = None,
                show_area: bool = True) -> np.ndarray:
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

    Returns:
        np.ndarray: (H', W', 3) uint8 RGB panel, ``H' >= height``.
    """
    size = font_size or legend_font_size(height)
    font = _font(size)
    pad, gap = max(size // 2, 4), max(size // 3, 3)
    row = size + gap
    texts = [f'{_shorten(e.name)} {_percent(e.area)}' if show_area else _shorten(e.name)
             for e in entries]
    probe = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    text_w = max([probe.textlength(t, font=font) for t in texts] + [0])
    width = int(pad + size + gap + text_w + pad)
    panel_h = max(height, pad * 2 + row * len(entries))
    panel = Image.new('RGB', (width, panel_h), BACKGROUND)
    draw = ImageDraw.Draw(panel)
    for i, (entry, text) in enumerate(zip(entries, texts)):
        y = pad + i * row
        box = (pad, y, pad + size, y + size)
        draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1),
                       fill=entry.color)
        draw.text((pad + size + gap, y), text, fill=TEXT, font=font)
        entry.swatch = box
    return np.asarray(panel, dtype=np.uint8).copy()
