"""The OVShapes world: classes, seen/unseen split and image rendering.

OVShapes is a small procedurally generated open-vocabulary world. Object
classes are compositions of a surface pattern and a colour ("striped red",
"dotted blue"); background ("stuff") classes have textures of their own. A
tiny ViT sees colour and pattern inside one 8 x 8 patch, which is what makes
zero-shot transfer to unseen compositions learnable in minutes on a CPU.

Split: 12 of the 36 object classes are unseen, two per colour and two per
pattern (the diagonals ``pattern = (colour + 0) mod 6`` and
``(colour + 3) mod 6``), so every attribute word of an unseen class occurs in
four seen classes. Unseen classes are new combinations of known words, as
novel categories are for a real CLIP.

Everything is deterministic given a ``numpy.random.Generator``.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

COLOURS = {
    'red': (215, 40, 40),
    'green': (40, 165, 60),
    'blue': (45, 85, 220),
    'yellow': (230, 205, 35),
    'purple': (140, 55, 185),
    'orange': (240, 135, 25),
}
"""Colour words and their RGB values."""

PATTERNS = ('plain', 'striped', 'checkered', 'dotted', 'dark', 'speckled')
"""Surface-pattern words; each is visible inside one 8 x 8 patch."""

STUFF = ('sky', 'grass', 'sand', 'wall')
"""Background classes, each with its own texture."""

STUFF_PHRASES = {'sky': 'the sky', 'grass': 'grass', 'sand': 'sand', 'wall': 'a brick wall'}

SHAPES = ('circle', 'square', 'triangle', 'ellipse', 'diamond')
"""Object outlines. Outline is NOT part of the class (a tiny ViT does not learn it)."""

IMAGE_SIZE = 64

_UNSEEN_OFFSETS = (0, 3)


def object_class_name(pattern: str, colour: str) -> str:
    """The class name of a composition, e.g. ``'striped red'``."""
    return f'{pattern} {colour}'


def object_classes() -> List[Tuple[str, str]]:
    """All (pattern, colour) compositions, colour-major, patterns in order."""
    return [(p, c) for c in COLOURS for p in PATTERNS]


def class_names() -> Tuple[str, ...]:
    """All 40 class names: 4 stuff classes first, then 36 object classes."""
    return tuple(STUFF) + tuple(object_class_name(p, c) for p, c in object_classes())


def unseen_class_names() -> Tuple[str, ...]:
    """The 12 unseen object classes (two per colour, two per pattern)."""
    names = []
    for ci, colour in enumerate(COLOURS):
        for off in _UNSEEN_OFFSETS:
            names.append(object_class_name(PATTERNS[(ci + off) % len(PATTERNS)], colour))
    return tuple(names)


def seen_class_names() -> Tuple[str, ...]:
    """Stuff classes and the 24 seen object classes."""
    unseen = set(unseen_class_names())
    return tuple(n for n in class_names() if n not in unseen)


def palette() -> List[List[int]]:
    """A display colour per class (stuff greys, objects their colour)."""
    stuff = [[150, 200, 240], [70, 130, 50], [215, 195, 150], [150, 150, 150]]
    objects = []
    for pattern, colour in object_classes():
        rgb = np.array(COLOURS[colour], float)
        shade = 0.5 + 0.1 * PATTERNS.index(pattern)
        objects.append([int(v) for v in np.clip(rgb * shade, 0, 255)])
    return stuff + objects


# ----------------------------------------------------------------------------
# Rendering


def _grid(h: int, w: int):
    return np.mgrid[0:h, 0:w]


def render_pattern(pattern: str, colour: str, h: int, w: int,
                   rng: np.random.Generator) -> np.ndarray:
    """An (h, w, 3) float image of a colour with a surface pattern."""
    base = np.array(COLOURS[colour], float) * rng.uniform(0.92, 1.08)
    light = base * 0.25 + 255 * 0.75
    yy, xx = _grid(h, w)
    oy, ox = rng.integers(0, 8, size=2)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    if pattern == 'striped':
        on = ((xx + yy + ox) // 2) % 2 == 0
        img[on] = light
    elif pattern == 'checkered':
        on = (((xx + ox) // 3) + ((yy + oy) // 3)) % 2 == 0
        img[on] = light
    elif pattern == 'dotted':
        on = ((((xx + ox) % 4) < 2) & (((yy + oy) % 4) < 2)
              & ((((xx + ox) // 4) + ((yy + oy) // 4)) % 2 == 0))
        img[on] = light
    elif pattern == 'dark':
        img *= 0.42
    elif pattern == 'speckled':
        on = rng.random((h, w)) < 0.3
        img[on] = rng.choice([20.0, 245.0], size=(int(on.sum()), 1))
    elif pattern != 'plain':
        raise ValueError(f"unknown pattern '{pattern}', expected one of {PATTERNS}")
    return img


def render_stuff(name: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An (h, w, 3) float texture of a background class."""
    yy, xx = _grid(h, w)
    if name == 'sky':
        t = (yy / max(h - 1, 1))[..., None]
        top = np.array([140, 190, 240.0]) * rng.uniform(0.95, 1.05)
        img = top * (1 - t) + np.array([205, 228, 250.0]) * t
        img = img + rng.normal(0, 2, size=(h, w, 1))
    elif name == 'grass':
        blade = rng.normal(0, 1, size=(1, w)) * 25 + rng.normal(0, 12, size=(h, w))
        img = np.stack([60 + 0.3 * blade, 125 + blade, 45 + 0.3 * blade], -1)
    elif name == 'sand':
        grain = rng.normal(0, 14, size=(h, w, 1))
        img = np.array([212, 192, 148.0]) + grain
    elif name == 'wall':
        oy, ox = rng.integers(0, 10, size=2)
        row = (yy + oy) // 5
        mortar = ((yy + oy) % 5 == 0) | (((xx + ox + 5 * (row % 2)) % 10) == 0)
        img = np.broadcast_to(np.array([160, 95, 80.0]), (h, w, 3)).copy()
        img[mortar] = (205, 205, 200)
        img = img + rng.normal(0, 5, size=(h, w, 1))
    else:
        raise ValueError(f"unknown stuff class '{name}', expected one of {STUFF}")
    return img


def shape_mask(shape: str, h: int, w: int, cy: float, cx: float, r: float,
               rng: np.random.Generator) -> np.ndarray:
    """A boolean (h, w) mask of an outline centred at (cy, cx) with radius r."""
    yy, xx = _grid(h, w)
    dy, dx = yy - cy, xx - cx
    if shape == 'circle':
        return dy ** 2 + dx ** 2 <= r ** 2
    if shape == 'square':
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == 'diamond':
        return np.abs(dy) + np.abs(dx) <= r * 1.1
    if shape == 'ellipse':
        ry, rx = (r, r * 0.6) if rng.random() < 0.5 else (r * 0.6, r)
        return (dy / ry) ** 2 + (dx / rx) ** 2 <= 1
    if shape == 'triangle':
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    raise ValueError(f"unknown shape '{shape}', expected one of {SHAPES}")


@dataclass
class Scene:
    """One rendered image with its label map and the classes it shows."""

    image: np.ndarray          # (H, W, 3) uint8
    label: np.ndarray          # (H, W) uint8 class indices into class_names()
    stuff: Tuple[str, ...]     # background classes, top to bottom
    objects: Tuple[str, ...]   # object class names, in painting order


def render_background(rng: np.random.Generator, size: int, index: dict, split_low: int,
                      split_high: int):
    """One or two background ("stuff") regions filling a ``size`` x ``size`` image.

    Half of the images show one background class; the others two, split by a
    wavy horizontal line at a row drawn from ``[split_low, split_high)``.

    Args:
        rng: Random generator (the background is a function of its state).
        size: Image side in pixels.
        index: Class name -> label value.
        split_low, split_high: Range of the split row of two-region images.

    Returns:
        tuple: ``(image (size, size, 3) uint8, label (size, size) uint8,
        stuff class names)``.
    """
    label = np.zeros((size, size), np.uint8)
    if rng.random() < 0.5:
        stuff = (STUFF[rng.integers(len(STUFF))],)
        image = render_stuff(stuff[0], size, size, rng)
        label[:] = index[stuff[0]]
    else:
        a, b = rng.choice(len(STUFF), size=2, replace=False)
        stuff = (STUFF[a], STUFF[b])
        split = int(rng.integers(split_low, split_high))
        wave = np.round(
            2 * np.sin(np.arange(size) / rng.uniform(4, 9) + rng.uniform(0, 6))).astype(int)
        top = np.arange(size)[:, None] < (split + wave)[None, :]
        image = np.where(top[..., None], render_stuff(stuff[0], size, size, rng),
                         render_stuff(stuff[1], size, size, rng))
        label[:] = np.where(top, index[stuff[0]], index[stuff[1]])
    return image, label, stuff


def render_scene(rng: np.random.Generator,
                 object_pool: Sequence[str] = None,
                 num_objects: Tuple[int, int] = (1, 3),
                 size: int = IMAGE_SIZE) -> Scene:
    """Renders a scene: one or two stuff regions and a few patterned objects.

    Args:
        rng: Random generator (the scene is a function of its state).
        object_pool: Object class names to draw from (default: all 36).
        num_objects: Inclusive range of the number of objects.
        size: Image side in pixels.
    """
    names = class_names()
    index = {n: i for i, n in enumerate(names)}
    pool = list(object_pool) if object_pool is not None else list(names[len(STUFF):])
    image, label, stuff = render_background(rng, size, index, size // 4, 3 * size // 4)
    objects = []
    for _ in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        name = pool[int(rng.integers(len(pool)))]
        pattern, colour = name.split(' ')
        r = rng.uniform(8, 15)
        cy, cx = rng.uniform(r * 0.6, size - r * 0.6, size=2)
        mask = shape_mask(SHAPES[rng.integers(len(SHAPES))], size, size, cy, cx, r, rng)
        if mask.sum() < 16:
            continue
        image[mask] = render_pattern(pattern, colour, size, size, rng)[mask]
        label[mask] = index[name]
        objects.append(name)
    # Only objects that stay visible after later ones were painted over them.
    present = set(np.unique(label).tolist())
    objects = [o for o in objects if index[o] in present]
    image = image + rng.normal(0, 3, size=image.shape)
    return Scene(np.clip(image, 0, 255).astype(np.uint8), label, stuff,
                 tuple(dict.fromkeys(objects)))


# ----------------------------------------------------------------------------
# Captions

_OBJECT_FORMS = ('a {} object', 'a {} shape', 'a {} thing', 'one {} object')
_CAPTION_FORMS = (
    '{objects} on {stuff}.',
    'a picture of {objects} and {stuff}.',
    '{objects} in front of {stuff}.',
    'there is {objects} over {stuff}.',
)


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return ''.join(parts)
    return ', '.join(parts[:-1]) + ' and ' + parts[-1]


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption naming every object and background class of a scene."""
    objects = list(dict.fromkeys(scene.objects))
    rng.shuffle(objects)
    stuff = _join([STUFF_PHRASES[s] for s in scene.stuff])
    if not objects:
        return f'a picture of {stuff}.'
    form = _OBJECT_FORMS[int(rng.integers(len(_OBJECT_FORMS)))]
    phrase = _join([form.format(o) for o in objects])
    form = _CAPTION_FORMS[int(rng.integers(len(_CAPTION_FORMS)))]
    return form.format(objects=phrase, stuff=stuff)


def hard_negative(scene: Scene, rng: np.random.Generator) -> str:
    """The scene's caption with one attribute of one object changed.

    Used as an extra negative text in contrastive pretraining: it differs
    from the true caption only in a colour or a pattern word.
    """
    if not scene.objects:
        return caption(scene, rng)
    objects = list(scene.objects)
    i = int(rng.integers(len(objects)))
    pattern, colour = objects[i].split(' ')
    if rng.random() < 0.5:
        pattern = [p for p in PATTERNS if p != pattern][int(rng.integers(len(PATTERNS) - 1))]
    else:
        colours = [c for c in COLOURS if c != colour]
        colour = colours[int(rng.integers(len(colours)))]
    objects[i] = object_class_name(pattern, colour)
    return caption(Scene(scene.image, scene.label, scene.stuff, tuple(objects)), rng)


# ----------------------------------------------------------------------------
# Pretraining scenes (tiny-CLIP pretraining only; worlds on disk use
# render_scene above and are unchanged)


def visible_classes(label: np.ndarray, min_pixels: int = 1) -> Tuple[Tuple[str, ...],
                                                                      Tuple[str, ...]]:
    """The (stuff, objects) class names with at least ``min_pixels`` pixels.

    Stuff in :data:`STUFF` order, objects in the order of :func:`class_names`.
    """
    names = class_names()
    counts = np.bincount(label.ravel(), minlength=len(names))
    shown = [names[i] for i in np.flatnonzero(counts >= max(min_pixels, 1))]
    stuff = tuple(n for n in shown if n in STUFF)
    return stuff, tuple(n for n in shown if n not in STUFF)


def render_crowded_scene(rng: np.random.Generator,
                         num_objects: Tuple[int, int] = (0, 6),
                         radius: Tuple[float, float] = (4.0, 15.0),
                         min_pixels: int = 12,
                         size: int = IMAGE_SIZE) -> Scene:
    """A pretraining scene: many objects of many sizes, cut by the border.

    As :func:`render_scene` (one or two stuff regions, patterned objects of
    random outline), but with a wider range of object counts and radii, and
    centres anywhere in the image, so that objects may be cut by the border
    as in a random crop of a larger scene. Classes left with fewer than
    ``min_pixels`` visible pixels are painted over with the background, so
    that ``scene.stuff`` and ``scene.objects`` name exactly the classes of
    ``scene.label`` (every one with at least ``min_pixels`` pixels, except a
    stuff class that only ever has fewer).
    """
    names = class_names()
    index = {n: i for i, n in enumerate(names)}
    pool = list(names[len(STUFF):])
    image, label, stuff = render_background(rng, size, index, size // 8, 7 * size // 8)
    background, background_label = image.copy(), label.copy()
    for _ in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        name = pool[int(rng.integers(len(pool)))]
        pattern, colour = name.split(' ')
        r = rng.uniform(*radius)
        cy, cx = rng.uniform(-r * 0.3, size + r * 0.3, size=2)
        mask = shape_mask(SHAPES[rng.integers(len(SHAPES))], size, size, cy, cx, r, rng)
        if not mask.any():
            continue
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        inside = mask[box]
        patch = render_pattern(pattern, colour, inside.shape[0], inside.shape[1], rng)
        image[box][inside] = patch[inside]
        label[box][inside] = index[name]
    counts = np.bincount(label.ravel(), minlength=len(names))
    for i in np.flatnonzero((counts > 0) & (counts < min_pixels)):
        if names[i] in STUFF:
            continue
        gone = label == i
        image[gone] = background[gone]
        label[gone] = background_label[gone]
    image = image + rng.normal(0, 3, size=image.shape)
    shown_stuff, shown_objects = visible_classes(label)
    return Scene(np.clip(image, 0, 255).astype(np.uint8), label,
                 tuple(s for s in stuff if s in shown_stuff), shown_objects)


def crop_scene(scene: Scene, top: int, left: int, crop: int,
               size: int = IMAGE_SIZE, min_pixels: int = 1) -> Scene:
    """A square crop of a scene, zoomed to ``size`` (nearest neighbour).

    The returned scene names exactly the classes with at least
    ``min_pixels`` pixels in the crop (counted on the zoomed label map).
    """
    h, w = scene.label.shape
    if not (0 <= top and 0 <= left and top + crop <= h and left + crop <= w and crop > 0):
        raise ValueError(f'crop ({top}, {left}, {crop}) is outside the {h} x {w} scene.')
    src = (np.arange(size) * crop) // size
    rows, cols = top + src[:, None], left + src[None, :]
    image, label = scene.image[rows, cols], scene.label[rows, cols]
    stuff, objects = visible_classes(label, min_pixels)
    return Scene(image, label, tuple(s for s in scene.stuff if s in stuff),
                 tuple(o for o in scene.objects if o in objects)
                 + tuple(o for o in objects if o not in scene.objects))
