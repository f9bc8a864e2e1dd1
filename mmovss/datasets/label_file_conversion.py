"""Runs a label conversion over many files: progress, resume, no overwrite.

Shared by the scripts in ``tools/dataset_converters/``. A conversion is a
list of ``(source, destination)`` pairs and a function that reads a source
and returns the label array to write. Outputs are written to a temporary
file and renamed, so an interrupted run never leaves a half-written label
behind and ``--resume`` can skip every file that exists. Temporaries have
hidden names ending in ``.partial`` (never a source or output suffix), and
``--resume``/``--overwrite`` delete those left by a killed run.
"""
import argparse
import glob
import os
import os.path as osp
import time
from typing import Callable, List, Sequence, Tuple

import numpy as np
from PIL import Image

from mmovss.io import check_planned_outputs

__all__ = ['add_conversion_args', 'convert_label_files', 'is_temporary',
           'list_stuffthingmap_pairs', 'nested_download_hint', 'remove_temporaries',
           'save_label', 'temporary_path']


def add_conversion_args(parser: argparse.ArgumentParser) -> None:
    """Adds ``--overwrite`` and ``--resume`` to a converter's parser.

    Args:
        parser (argparse.ArgumentParser): The script's parser.
    """
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        '--overwrite', action='store_true',
        help='rewrite output files that already exist')
    group.add_argument(
        '--resume', action='store_true',
        help='keep existing output files and convert only the missing ones')


def save_label(label: np.ndarray, path: str) -> None:
    """Writes a label map atomically (PNG or TIFF by extension).

    ``uint8`` maps become 8-bit PNGs, ``uint16`` maps 16-bit PNG/TIFF.

    Args:
        label (np.ndarray): (H, W) ``uint8`` or ``uint16`` array.
        path (str): Destination; its folder is created.
    """
    if label.dtype not in (np.uint8, np.uint16) or label.ndim != 2:
        raise ValueError(
            f'{path}: a label map must be a 2-D uint8 or uint16 array, got '
            f'{label.dtype} with shape {label.shape}.')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = temporary_path(path)
    fmt = 'TIFF' if osp.splitext(path)[1].lower() in ('.tif', '.tiff') else 'PNG'
    try:
        Image.fromarray(label).save(tmp, format=fmt)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def temporary_path(path: str) -> str:
    """The temporary file written before ``path`` is renamed into place.

    A hidden name ending in ``.partial`` (not in the image suffix): listings
    by suffix (``*.png``, ``*_labelIds.png``) and ``glob`` never count a
    temporary left by a killed run as a source or an output.
    """
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.{os.getpid()}.partial')


def is_temporary(name: str) -> bool:
    """Whether a file name is a converter temporary (this or an older version).

    Older versions wrote ``NAME.partial.EXT`` next to the output.
    """
    name = osp.basename(name)
    return (name.startswith('.') and name.endswith('.partial')) or \
        '.partial.' in name


def remove_temporaries(folders: Sequence[str],
                       log: Callable[[str], None] = print) -> int:
    """Deletes temporaries left by killed runs in ``folders``; returns how many."""
    removed = 0
    for folder in folders:
        if not osp.isdir(folder):
            continue
        for name in os.listdir(folder):
            path = osp.join(folder, name)
            if is_temporary(name) and osp.isfile(path):
                os.remove(path)
                removed += 1
    if removed:
        log(f'removed {removed} temporary file(s) left by an interrupted run')
    return removed


def convert_label_files(pairs: Sequence[Tuple[str, str]],
                        convert: Callable[[str], np.ndarray],
                        overwrite: bool = False,
                        resume: bool = False,
                        log: Callable[[str], None] = print,
                        log_every: int = 100) -> dict:
    """Converts every ``source`` into ``destination``.

    Args:
        pairs (Sequence[tuple[str, str]]): ``(source, destination)`` paths.
        convert (Callable[[str], np.ndarray]): Reads a source path and
            returns the label array to write (see :func:`save_label`).
        overwrite (bool): Rewrite existing destinations.
        resume (bool): Skip existing destinations.
        log (Callable[[str], None]): Progress printer.
        log_every (int): Print progress every this many files.

    Returns:
        dict: ``converted`` and ``skipped`` counts.

    Raises:
        FileExistsError: If a destination exists and neither ``overwrite``
            nor ``resume`` is set (checked before anything is written).
        FileNotFoundError: If a source is missing.
    """
    if overwrite and resume:
        raise ValueError('Use either overwrite or resume, not both.')
    pairs = list(pairs)
    existing: List[str] = [dst for _, dst in pairs if osp.exists(dst)]
    if existing and not (overwrite or resume):
        raise FileExistsError(
            f'{len(existing)} output file(s) exist already, e.g. '
            f'{existing[0]}. Pass --resume to keep them and convert the '
            'rest, or --overwrite to rewrite them.')
    # A destination that is a source (same inode: also through links) would
    # be destroyed by its own conversion.
    check_planned_outputs([dst for _, dst in pairs], [src for src, _ in pairs],
                          flag='--out-dir')
    missing = [src for src, _ in pairs if not osp.exists(src)]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} input file(s) are missing, e.g. {missing[0]}. '
            'Check the dataset folder given to the converter.')
    if resume or overwrite:
        remove_temporaries(sorted({osp.dirname(dst) for _, dst in pairs}), log)
    total = len(pairs)
    converted = skipped = 0
    start = time.time()
    log(f'converting {total} label files')
    for index, (src, dst) in enumerate(pairs, 1):
        if resume and osp.exists(dst):
            skipped += 1
        else:
            save_label(_read_and_convert(convert, src), dst)
            converted += 1
        if index % log_every == 0 or index == total:
            log(f'[{index}/{total}] converted {converted}, skipped '
                f'{skipped} ({time.time() - start:.0f}s)')
    return dict(converted=converted, skipped=skipped)


def _read_and_convert(convert: Callable[[str], np.ndarray],
                      src: str) -> np.ndarray:
    """Runs ``convert(src)``; a source that cannot be read is named.

    Decoders say ``image file is truncated`` or ``Mat file appears to be
    truncated`` (or raise an ``IndexError``) without the file; a partly
    extracted download then ended a long run with a traceback naming none of
    its files.

    Raises:
        ValueError: ``'<src>' cannot be read (…)`` with the fix.
    """
    try:
        return convert(src)
    except Exception as err:
        # Label conversions raise a ValueError naming the file already;
        # decoders raise OSError, scipy's MatReadError, even IndexError.
        if isinstance(err, ValueError) and src in str(err):
            raise
        raise _unreadable(src, err) from err


def _unreadable(src: str, err: BaseException) -> ValueError:
    return ValueError(
        f"'{src}' cannot be read ({type(err).__name__}: {err}): the file is "
        'truncated or not a label file of this download, e.g. from an archive '
        'extracted only in part. Extract the download again, then rerun with '
        '--resume (the files converted so far are kept).')


def nested_download_hint(root: str) -> str:
    """A sentence naming the copy of ``root`` one level too deep, or ''.

    The VOC tars hold ``VOCdevkit/VOC20xx/``; unpacked into
    ``data/VOCdevkit/`` (or into ``VOC20xx/`` itself) they give
    ``data/VOCdevkit/VOCdevkit/VOC20xx`` (``VOC20xx/VOCdevkit/VOC20xx``).

    Args:
        root: The dataset folder the converter was given.

    Returns:
        str: `` It was unpacked one level too deep: … exists; move it to …``
        or an empty string.
    """
    root = osp.normpath(root)
    name = osp.basename(root)
    for parent in (osp.dirname(root), root):
        nested = osp.join(parent, 'VOCdevkit', name)
        if osp.isdir(nested):
            return (f' It was unpacked one level too deep: {nested} exists; '
                    f'move it to {root}.')
    return ''


def list_stuffthingmap_pairs(root: str, out_dir: str, splits: Sequence[str],
                             suffix: str) -> List[Tuple[str, str]]:
    """Pairs every COCO-Stuff stuffthingmap with its output path.

    Shared by the COCO-Stuff-171 and COCO-Object converters. Outputs written
    next to the sources (``*TrainIds.png``) and temporaries of a killed run are
    not sources.

    Args:
        root: COCO-Stuff root holding ``annotations/<split>/*.png``.
        out_dir: Output root; files go to ``<out_dir>/annotations/<split>/``.
        splits: Split folders, e.g. ``['val2017']``.
        suffix: Replaces ``.png`` in the output name, e.g. ``_labelTrainIds.png``.

    Returns:
        ``(source, output)`` pairs in sorted order.

    Raises:
        FileNotFoundError: A split folder is missing (the message says which zip to unpack).
    """
    pairs = []
    for split in splits:
        src_dir = osp.join(root, 'annotations', split)
        if not osp.isdir(src_dir):
            raise FileNotFoundError(
                f'{src_dir} does not exist; unzip stuffthingmaps_trainval2017'
                f'.zip into {osp.join(root, "annotations")}.')
        for src in sorted(glob.glob(osp.join(src_dir, '*.png'))):
            name = osp.basename(src)
            # Outputs written next to the sources, and temporaries of a
            # killed run (older versions named them NAME.partial.png).
            if name.endswith('TrainIds.png') or is_temporary(name):
                continue
            pairs.append((src, osp.join(out_dir, 'annotations', split,
                                        name[:-4] + suffix)))
    return pairs
