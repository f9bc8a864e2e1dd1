"""The image a benchmark feeds: a file or noise, through the test pipeline."""
import copy
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np

from .errors import BenchmarkError

DEFAULT_IMAGE_SIZE = (512, 683)  # H, W: a typical ADE20K validation image


def build_test_pipeline(cfg, drop_resize: bool):
    """The config's test pipeline fed with an array, without annotations.

    Args:
        cfg (Config): The config.
        drop_resize (bool): Remove resizing steps (``--shape`` gives the
            network input size directly).
    """
    from mmcv.transforms import Compose
    loader = cfg.get('test_dataloader') or {}
    steps = (loader.get('dataset') or {}).get('pipeline')
    if not steps:
        steps = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    out = []
    for step in steps:
        kind = str(step['type'])
        if 'Annotation' in kind:
            continue
        if drop_resize and 'Resize' in kind:
            continue
        if kind == 'LoadImageFromFile':
            step = dict(type='LoadImageFromNDArray',
                        to_float32=step.get('to_float32', False))
        out.append(copy.deepcopy(step))
    return Compose(out)


def make_image(image: Optional[str], size: Sequence[int],
               seed: int = 0) -> np.ndarray:
    """A BGR uint8 image: the file, resized to ``size`` if given, or noise.

    Args:
        image: Image file, or None for uniform noise.
        size: (H, W); None keeps the file's size.
        seed: Noise seed.
    """
    import mmcv
    if image is not None:
        if not osp.isfile(image):
            raise BenchmarkError(f'Image file {image!r} does not exist.')
        array = mmcv.imread(image)
        if array is None:
            raise BenchmarkError(f'Cannot read image {image!r}.')
        if size is not None:
            array = mmcv.imresize(array, (int(size[1]), int(size[0])))
        return array
    h, w = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3),
                                                dtype=np.uint8)


def first_image_or_noise(path: str, size: Sequence[int]) -> np.ndarray:
    """:func:`make_image` of a file or of a folder's first image, else noise.

    Args:
        path: An image file, or a folder (its first ``.jpg``/``.png`` in
            sorted order); noise when there is no such file.
        size: (H, W) of the returned image.
    """
    if osp.isdir(path):
        files = sorted(f for f in os.listdir(path)
                       if f.lower().endswith(('.jpg', '.png')))
        path = osp.join(path, files[0]) if files else ''
    return make_image(path if path and osp.isfile(path) else None, size)
