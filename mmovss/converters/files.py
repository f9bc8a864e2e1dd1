"""Converting a checkpoint *file*: one reader, one writer, one command line.

Every ``tools/model_converters/<format>_to_mmovss.py`` wrapper is
:func:`converter_main` with its format's name, and
:mod:`mmovss.apis.released_weights` (the download-convert-cache path behind
released model names) reads and writes with the same :func:`read_checkpoint`
and :func:`save_atomically`, so a file converted by hand and a file converted
on first use carry the same record (:data:`CONVERTED_META_KEY`) and either
can be passed to ``tools/test.py``.

A converter module (:data:`mmovss.converters.formats.FORMAT_MODULES`) may
define ``conversion_meta(checkpoint) -> dict``: facts of the source worth
keeping beside the weights (e.g. ZegFormer's segment temperature, OVSeg's
backbone, LSeg's readout), stored in the output's ``meta``.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from mmovss.io.temporary import temporary_beside

from .common import ConversionError, unwrap_state_dict
from .formats import detect_format, format_module

__all__ = [
    'CONVERTED_META_KEY', 'read_checkpoint', 'save_atomically', 'converter_version',
    'conversion_record',
    'convert_file', 'converter_main'
]

CONVERTED_META_KEY = 'mmovss_converted'
"""Key of ``meta`` holding the record of a conversion: source, format, converter version."""


def read_checkpoint(path: str, mmap: bool = True) -> dict:
    """Reads a checkpoint without running any of its code.

    The file is CRC-checked first; then it is loaded weights-only
    (memory-mapped where the file allows: tensors are read when touched).
    Python objects that weights-only loading refuses (e.g. the callback
    classes PyTorch-Lightning stores) become inert stand-ins
    (:func:`mmovss.runtime.load_with_inert_objects`): nothing of the file's
    code is imported or run.

    Args:
        path (str): The checkpoint file.
        mmap (bool): Try a memory-mapped load first.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Truncated or corrupt file, or an object even the inert
            loader refuses (the weights-only loader's message).
    """
    from mmovss.runtime import (
        check_checkpoint_file,
        load_checkpoint_safely,
        load_with_inert_objects,
    )
    check_checkpoint_file(path)
    if mmap:
        try:
            return torch.load(path, map_location='cpu', weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - legacy files cannot be memory-mapped; the
            pass  # safe loader below reads them (or says which object it refuses)
    try:
        return load_checkpoint_safely(path)
    except ValueError as err:
        refused = err
    try:
        return load_with_inert_objects(path)
    except Exception:  # noqa: BLE001 - still refused: the safe loader's message says why
        raise refused from None


def save_atomically(obj, dst: str) -> None:
    """``torch.save`` to a hidden temporary beside ``dst``, then a rename:
    an interrupted run never leaves a half-written ``dst``."""
    folder = osp.dirname(osp.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_beside(dst)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def converter_version(module) -> int:
    """A converter module's ``VERSION`` (1 if it defines none): a cached conversion
    made by an older version is redone."""
    return int(getattr(module, 'VERSION', 1))


def conversion_record(fmt: str, source: str, local: Optional[str] = None, **extra) -> dict:
    """The record stored under ``meta[CONVERTED_META_KEY]`` of a converted file."""
    return dict(source=source, file=osp.realpath(local or source), format=fmt,
                version=converter_version(format_module(fmt)), **extra)


def _not_this_format(fmt: str, src: str, state: Dict[str, torch.Tensor]) -> ConversionError:
    try:
        other = detect_format(state)
    except ValueError:
        other = None
    if other is not None:
        hint = (f'its keys are those of {other!r}: use '
                f'tools/model_converters/{other}_to_mmovss.py')
    else:
        hint = 'no known format matches its keys'
    return ConversionError(f'{src} is not a {fmt} checkpoint ({hint}).')


def convert_file(fmt: str, src: str, dst: str, **convert_kwargs) -> Tuple[dict, dict]:
    """Converts the checkpoint file ``src`` of format ``fmt`` to mmovss keys in ``dst``.

    Args:
        fmt (str): A format of :data:`mmovss.converters.formats.FORMAT_MODULES`.
        src (str): The source checkpoint.
        dst (str): The output (never an input, never inside a dataset; see
            :func:`mmovss.io.check_planned_outputs`); written atomically.
        **convert_kwargs: Passed to the format's ``convert``.

    Returns:
        tuple[dict, dict]: The converted state dict and the saved ``meta``.

    Raises:
        ConversionError: The file is not of this format (the message names
            the format its keys match, if any) or has unaccounted keys.
        ValueError / FileNotFoundError: Unsafe output, missing, truncated or
            corrupt input.
    """
    from mmovss.io import check_planned_outputs
    check_planned_outputs([dst], [src], flag='dst')
    module = format_module(fmt)
    checkpoint = read_checkpoint(src)
    state = unwrap_state_dict(checkpoint)
    if not module.matches(state):
        raise _not_this_format(fmt, src, state)
    converted = module.convert(state, **convert_kwargs)
    converted = {k: v.clone() if torch.is_tensor(v) else v for k, v in converted.items()}
    meta = {CONVERTED_META_KEY: conversion_record(fmt, src)}
    if hasattr(module, 'conversion_meta'):
        meta.update(module.conversion_meta(checkpoint))
    save_atomically(dict(state_dict=converted, meta=meta), dst)
    return converted, meta


def converter_main(fmt: str, argv: Optional[Sequence[str]] = None,
                   description: Optional[str] = None, src_help: str = 'released checkpoint',
                   add_arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None,
                   convert_kwargs: Optional[Callable[[argparse.Namespace], dict]] = None) -> dict:
    """The command line of a ``tools/model_converters/<fmt>_to_mmovss.py`` wrapper.

    ``SRC DST``: converts with :func:`convert_file`, prints what was saved,
    and exits with a one-line message naming the file on any refused input.
    An existing ``DST`` is replaced only with ``--overwrite`` (a second
    released checkpoint given as ``DST`` by mistake stays intact).

    Args:
        fmt (str): The format the tool reads.
        argv (Sequence[str], optional): Arguments (default ``sys.argv[1:]``).
        description (str, optional): The tool's ``--help`` line.
        src_help (str): Help for ``SRC``.
        add_arguments (callable, optional): Adds the tool's own flags.
        convert_kwargs (callable, optional): Parsed arguments -> keyword
            arguments of the format's ``convert``.

    Returns:
        dict: The saved ``meta``.
    """
    from mmovss.io import UnsafeOutputError, check_output_file
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help=src_help)
    parser.add_argument('dst', help='output checkpoint (mmovss keys; a new file)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_output_file(args.dst, overwrite=args.overwrite, protected_files=[args.src],
                          flag='DST')
        kwargs = convert_kwargs(args) if convert_kwargs is not None else {}
        state, meta = convert_file(fmt, args.src, args.dst, **kwargs)
    except (ConversionError, UnsafeOutputError, ValueError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    facts = ', '.join(f'{k} {v}' for k, v in meta.items()
                      if k != CONVERTED_META_KEY and isinstance(v, (str, int, float)))
    print(f'saved {len(state)} tensors ({fmt}{", " + facts if facts else ""}) to {args.dst}')
    return meta
