"""Inputs of the inferencer: image files, folders of images and arrays.

A user hands the inferencer one image, a list of images or a folder. This
module turns that into a list of :class:`ImageInput` items, each with the
name its outputs are written under, and says which items came from a folder
listing: an unreadable file found in a folder is skipped with a warning,
while an unreadable file named explicitly is an error.
"""
import os
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np

__all__ = [
    'IMAGE_EXTENSIONS', 'ImageInput', 'UnreadableImageError', 'UnsegmentableImageError',
    'collect_inputs', 'check_array_image'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp',
                    '.ppm', '.pgm', '.pbm', '.jp2')
"""File extensions (lower case) listed as images when a folder is given."""

InputLike = Union[str, os.PathLike, np.ndarray]


class UnreadableImageError(ValueError):
    """An image file exists but cannot be decoded (or does not exist)."""


class UnsegmentableImageError(UnreadableImageError):
    """An image was read but the model cannot segment it (e.g. smaller than
    one ViT patch, thinner than a convolution's kernel)."""


@dataclass
class ImageInput:
    """One image to segment.

    Attributes:
        source (str | np.ndarray): A file path, or a BGR ``uint8`` array.
        name (str): Base name (no extension) of the outputs of this image.
        from_folder (bool): Listed from a folder (unreadable: skip + warn).
    """
    source: Union[str, np.ndarray]
    name: str
    from_folder: bool = False

    @property
    def path(self) -> Optional[str]:
        """The file path, or None for an array."""
        return self.source if isinstance(self.source, str) else None


def check_array_image(array: np.ndarray, where: str) -> np.ndarray:
    """Validates an image array: (H, W, 3) BGR or (H, W) grey, ``uint8``.

    Args:
        array (np.ndarray): The image.
        where (str): How to name the input in messages.

    Returns:
        np.ndarray: The (H, W, 3) image (grey images are repeated 3 times).
    """
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ValueError(
            f'{where}: an image array must have shape (H, W, 3) (BGR channel '
            f'order, as cv2/mmcv read images) or (H, W), got {array.shape}. '
            f'Drop an alpha channel with array[..., :3].')
    if array.dtype != np.uint8:
        raise ValueError(
            f'{where}: an image array must be uint8 (0..255), got '
            f'{array.dtype}; scale it to 0..255 first: 16-bit images with '
            f'(array >> 8).astype(np.uint8) (what OpenCV does for 16-bit '
            f'files), floats in 0..1 with (array * 255).round().astype('
            f'np.uint8).')
    return array


def _list_folder(folder: str) -> List[str]:
    """Sorted image files of a folder (not recursive), warns about others."""
    images, skipped = [], []
    for entry in sorted(os.listdir(folder)):
        path = osp.join(folder, entry)
        if not osp.isfile(path):
            continue
        if osp.splitext(entry)[1].lower() in IMAGE_EXTENSIONS:
            images.append(path)
        else:
            skipped.append(entry)
    if skipped:
        shown = ', '.join(skipped[:5]) + (', ...' if len(skipped) > 5 else '')
        warnings.warn(
            f'Skipped {len(skipped)} file(s) of {folder!r} that are not '
            f'images ({shown}); image extensions: '
            f'{", ".join(IMAGE_EXTENSIONS)}.')
    if not images:
        raise ValueError(f'Folder {folder!r} holds no image files '
                         f'({", ".join(IMAGE_EXTENSIONS)}).')
    return images


def _unique_names(items: List[ImageInput]) -> None:
    """Makes output names unique (``a.jpg`` and ``a.png`` -> ``a_jpg``...)."""
    counts = {}
    for item in items:
        counts[item.name] = counts.get(item.name, 0) + 1
    used = set()
    for item in items:
        if counts[item.name] > 1 and item.path is not None:
            ext = osp.splitext(item.path)[1].lstrip('.').lower()
            item.name = f'{item.name}_{ext}' if ext else item.name
        base, k = item.name, 1
        while item.name in used:
            item.name = f'{base}_{k}'
            k += 1
        used.add(item.name)


def collect_inputs(inputs: Union[InputLike, Sequence[InputLike]]
                   ) -> List[ImageInput]:
    """Turns what a user passes into a list of :class:`ImageInput`.

    Args:
        inputs: An image path, a folder (its image files, sorted, not
            recursive; other files are skipped with a warning), a BGR
            ``uint8`` array, or a list of these.

    Returns:
        list[ImageInput]: One item per image, with unique output names
        (``stem`` of the file, ``array_00000`` for arrays).

    Raises:
        FileNotFoundError: A path that does not exist.
        ValueError: An empty list or folder, or a malformed array.
    """
    if isinstance(inputs, (str, os.PathLike, np.ndarray)):
        inputs = [inputs]
    if not isinstance(inputs, Sequence):
        raise TypeError(
            f'inputs must be an image path, a folder, an array or a list of '
            f'these, got {type(inputs).__name__}.')
    if len(inputs) == 0:
        raise ValueError('No input images were given.')
    items = []
    num_arrays = 0
    for index, entry in enumerate(inputs):
        if isinstance(entry, np.ndarray):
            array = check_array_image(entry, f'input {index}')
            items.append(ImageInput(array, f'array_{num_arrays:05d}'))
            num_arrays += 1
        elif isinstance(entry, (str, os.PathLike)):
            path = os.fspath(entry)
            if osp.isdir(path):
                items.extend(
                    ImageInput(p, osp.splitext(osp.basename(p))[0], True)
                    for p in _list_folder(path))
            elif osp.isfile(path):
                items.append(
                    ImageInput(path, osp.splitext(osp.basename(path))[0]))
            else:
                raise FileNotFoundError(
                    f'Input image {path!r} does not exist (pass an image '
                    f'file, a folder of images or an array).')
        else:
            raise TypeError(
                f'input {index} is a {type(entry).__name__}; pass image '
                f'paths, folders or (H, W, 3) uint8 BGR arrays.')
    _unique_names(items)
    return items
