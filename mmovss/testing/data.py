"""Tiny segmentation datasets written to disk in the MMSegmentation layout.

``make_tiny_seg_dataset`` writes::

    root/
      img_dir/{train,val}/NNNN.jpg|png
      ann_dir/{train,val}/NNNN.png      (uint8 labels, or uint16 when asked)

Each image is a noisy flat background with a few axis-aligned rectangles; the
label of a pixel is the index of the class whose colour painted it, so a
model can learn the task in a few iterations. Deterministic by ``seed``.
"""
import os.path as osp
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

DEFAULT_CLASSES = ('background', 'red box', 'green box', 'blue box')


def _class_colours(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array([[40, 40, 40], [220, 30, 30], [30, 200, 30], [30, 30, 220],
                     [220, 220, 30], [220, 30, 220], [30, 220, 220], [240, 240, 240]])
    if num_classes <= len(base):
        return base[:num_classes]
    extra = rng.integers(0, 256, size=(num_classes - len(base), 3))
    return np.concatenate([base, extra])


def make_tiny_sample(rng: np.random.Generator, colours: np.ndarray, size=(48, 64),
                     max_objects: int = 3):
    """One image (H, W, 3) uint8 and its label map (H, W) int64."""
    h, w = size
    num_classes = len(colours)
    label = np.zeros((h, w), np.int64)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(1, num_classes)) if num_classes > 1 else 0
        y0, x0 = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
        y1 = int(rng.integers(y0 + 6, min(h, y0 + h // 2) + 1))
        x1 = int(rng.integers(x0 + 6, min(w, x0 + w // 2) + 1))
        label[y0:y1, x0:x1] = cls
    noise = rng.normal(0, 8, size=(h, w, 3))
    image = np.clip(colours[label] + noise, 0, 255).astype(np.uint8)
    return image, label


def make_tiny_seg_dataset(root,
                          classes: Sequence[str] = DEFAULT_CLASSES,
                          num_train: int = 8,
                          num_val: int = 4,
                          size=(48, 64),
                          seed: int = 0,
                          img_suffix: str = '.jpg',
                          label_dtype=np.uint8,
                          ignore_border: bool = False) -> dict:
    """Writes a tiny dataset in the MMSeg layout and returns its description.

    Args:
        root (str | Path): Output directory (created).
        classes (Sequence[str]): Class names; label ``i`` means ``classes[i]``.
        num_train (int): Number of training pairs.
        num_val (int): Number of validation pairs.
        size (tuple): (H, W) of every image.
        seed (int): Seed; the same seed writes the same files.
        img_suffix (str): ``'.jpg'`` or ``'.png'``.
        label_dtype: ``np.uint8`` or ``np.uint16`` label PNGs.
        ignore_border (bool): Paint a 1-pixel border with the ignore value
            (255 for uint8, 65535 for uint16).

    Returns:
        dict: ``data_root``, ``classes``, ``img_suffix``, ``seg_map_suffix``,
        ``train`` and ``val`` dicts of ``img_path``/``seg_map_path`` prefixes,
        and ``ignore_index``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    colours = _class_colours(len(classes), rng)
    ignore_index = int(np.iinfo(label_dtype).max)
    if len(classes) > ignore_index:
        raise ValueError(f'make_tiny_seg_dataset: {len(classes)} classes do not fit '
                         f'{np.dtype(label_dtype).name} labels; use label_dtype=np.uint16')
    for split, count in (('train', num_train), ('val', num_val)):
        (root / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (root / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, label = make_tiny_sample(rng, colours, size)
            label = label.astype(label_dtype)
            if ignore_border:
                label[0, :] = label[-1, :] = label[:, 0] = label[:, -1] = ignore_index
            Image.fromarray(image).save(root / 'img_dir' / split / f'{i:04d}{img_suffix}')
            Image.fromarray(label).save(root / 'ann_dir' / split / f'{i:04d}.png')
    return dict(
        data_root=str(root), classes=tuple(classes), img_suffix=img_suffix,
        seg_map_suffix='.png', ignore_index=ignore_index,
        train=dict(img_path=osp.join('img_dir', 'train'),
                   seg_map_path=osp.join('ann_dir', 'train')),
        val=dict(img_path=osp.join('img_dir', 'val'), seg_map_path=osp.join('ann_dir', 'val')))
