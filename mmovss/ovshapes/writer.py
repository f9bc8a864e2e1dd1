"""Writes an OVShapes world to disk in the MMSegmentation layout.

::

    root/
      img_dir/{train,val}/NNNNNN.png     RGB images (64 x 64)
      ann_dir/{train,val}/NNNNNN.png     uint8 labels, indices into classes.txt
      classes.txt                        one class per line (all 40)
      split.json                         seen / unseen class names
      captions.json                      {"train/NNNNNN.png": [caption, ...], ...}

Labels exist for every class; training pipelines ignore unseen classes
(``OVShapesDataset(ignore_unseen=True)``). Deterministic given the seed.
"""
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from . import world

CAPTIONS_PER_IMAGE = 3

_WORLD_FILE = re.compile(r'\d{6}\.png')

# Objects have a radius of 8 to 15 pixels (world.render_scene): smaller
# images fail inside the renderer (below 18 px) or are mostly one object.
MIN_IMAGE_SIZE = 32

# Written last, after every image: a world without them is incomplete.
_INDEX_FILES = ('classes.txt', 'split.json', 'captions.json')


def check_world_settings(seed: int, num_train: int, num_val: int, size: int) -> None:
    """Refuses settings ``write_world`` cannot render, naming the option.

    Raises:
        ValueError: A negative image count or seed, or ``size`` below
            :data:`MIN_IMAGE_SIZE`.
    """
    if num_train < 0 or num_val < 0:
        raise ValueError(f'num_train ({num_train}) and num_val ({num_val}) must be >= 0 '
                         '(--num-train, --num-val).')
    if seed < 0:
        raise ValueError(f'seed ({seed}, --seed) must be >= 0 (numpy seeds are '
                         'non-negative).')
    if size < MIN_IMAGE_SIZE:
        raise ValueError(f'size ({size}, --size) must be >= {MIN_IMAGE_SIZE}: objects have '
                         'a radius of 8 to 15 pixels (the default is 64).')


def write_world(root, seed: int = 0, num_train: int = 2000, num_val: int = 200,
                size: int = world.IMAGE_SIZE, overwrite: bool = False) -> dict:
    """Generates and writes a world; returns a summary dict.

    Args:
        root: Output directory.
        seed: Seed of the world (same seed, same files).
        num_train: Number of training images.
        num_val: Number of validation images.
        size: Image side in pixels.
        overwrite: Allow writing into a directory that already holds a world.
            Its image and label files (``NNNNNN.png``) are all removed
            before the first new one is written, so a smaller (or an
            interrupted) world never keeps images of the old one. Its
            ``classes.txt``, ``split.json`` and ``captions.json`` are removed
            first and written after the last image, so an interrupted
            rewrite leaves no captions of the old world beside new images.

    Raises:
        FileExistsError: ``root`` already holds a world and ``overwrite`` is False.
        ValueError: A negative image count or seed, an image side below
            :data:`MIN_IMAGE_SIZE`.
    """
    root = Path(root)
    check_world_settings(seed, num_train, num_val, size)
    if (root / 'classes.txt').exists() and not overwrite:
        raise FileExistsError(f'{root} already holds an OVShapes world; choose another '
                              'directory or pass overwrite=True (--force).')
    for name in _INDEX_FILES:  # an interrupted rewrite must not keep the old captions
        if (root / name).is_file():
            (root / name).unlink()
    for split in ('train', 'val'):
        for folder in (root / 'img_dir' / split, root / 'ann_dir' / split):
            if folder.is_dir():  # every image of an earlier world, before any new one
                for path in folder.iterdir():
                    if _WORLD_FILE.fullmatch(path.name):
                        path.unlink()
    rng = np.random.default_rng(seed)
    captions = {}
    counts = np.zeros(len(world.class_names()), np.int64)
    for split, count in (('train', num_train), ('val', num_val)):
        (root / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (root / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            scene = world.render_scene(rng, size=size)
            name = f'{i:06d}.png'
            Image.fromarray(scene.image).save(root / 'img_dir' / split / name)
            Image.fromarray(scene.label).save(root / 'ann_dir' / split / name)
            captions[f'{split}/{name}'] = [world.caption(scene, rng)
                                           for _ in range(CAPTIONS_PER_IMAGE)]
            if split == 'train':
                counts += np.bincount(scene.label.ravel(), minlength=len(counts))
    (root / 'classes.txt').write_text('\n'.join(world.class_names()) + '\n')
    split_info = dict(seen=list(world.seen_class_names()), unseen=list(world.unseen_class_names()),
                      seed=seed, num_train=num_train, num_val=num_val)
    (root / 'split.json').write_text(json.dumps(split_info, indent=1))
    (root / 'captions.json').write_text(json.dumps(captions, indent=0))
    return dict(root=str(root), train_pixels_per_class=counts.tolist(), **split_info)
