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
            Its image and label files (``NNNNNN.png``) are all replaced: those
            numbered beyond the new ``num_train`` / ``num_val`` are removed, so
            a smaller world never keeps images of the old one.

    Raises:
        FileExistsError: ``root`` already holds a world and ``overwrite`` is False.
        ValueError: A negative image count.
    """
    root = Path(root)
    if num_train < 0 or num_val < 0:
        raise ValueError(f'num_train ({num_train}) and num_val ({num_val}) must be >= 0 '
                         '(--num-train, --num-val).')
    if (root / 'classes.txt').exists() and not overwrite:
        raise FileExistsError(f'{root} already holds an OVShapes world; choose another '
                              'directory or pass overwrite=True (--force).')
    for split, count in (('train', num_train), ('val', num_val)):
        for folder in (root / 'img_dir' / split, root / 'ann_dir' / split):
            if folder.is_dir():  # files of an earlier world beyond the new count
                for path in folder.iterdir():
                    if _WORLD_FILE.fullmatch(path.name) and int(path.stem) >= count:
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
