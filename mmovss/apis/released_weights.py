"""Released checkpoints: download once, recognise, convert once, cache.

A model name of the model zoo (:mod:`mmovss.apis.model_zoo`) brings the URL
of its authors' checkpoint; a user may also pass such a file (or its URL)
with ``--weights``. :func:`prepare_weights` turns any of them into a file of
mmovss's layout, used by :class:`~mmovss.apis.OpenVocabInferencer`,
``tools/demo.py`` and ``tools/test.py``:

1. **Download** (URLs only): into the weights cache, ``$MMOVSS_WEIGHTS_DIR``
   or else the usual torch hub folder (``$TORCH_HOME/hub/checkpoints``, where
   mmengine and torch.hub keep checkpoints), under
   ``mmovss/<8 hex of the URL's hash>/<file name>`` (released files of
   different projects share names such as ``model_base.pth``). The download
   goes to a temporary file that is renamed when complete, so an interrupted
   download leaves nothing behind. Without network the error names the URL,
   the place to put the file and the ``--weights`` to pass instead. A URL of
   a folder or a web page (a Google Drive folder of several checkpoints) is
   not downloaded: the error names the file to fetch by hand.
2. **Recognise** the format by the file's keys
   (:func:`mmovss.converters.formats.detect_format`). A file already in
   mmovss's layout (a checkpoint of ``tools/train.py``, or one converted
   here) is used as it is.
3. **Convert** with the format's converter, once: the result is written to
   ``<cache>/mmovss_converted/<file stem>-<format>-<key>.pth`` where the key
   hashes the source's real path, size and modification time, atomically
   (temporary file + rename) and never over a file that is not a conversion
   of the same source. The next call finds it without reading the source.
   A converted file carries ``meta['mmovss_converted']`` (source, format,
   converter version) and is loaded strictly (:func:`load_prepared`,
   :func:`mmovss.runtime.load_model_checkpoint_strictly`): every key of the
   model must be filled, except the parts that a converter module declares
   absent from its releases (``PRETRAINED_PREFIXES``: filled by the config's
   named pretrained source at build time). A converter module may also set
   ``VERSION`` (an int; default 1): a cached conversion of another version is
   redone.
"""
import hashlib
import os
import os.path as osp
import tempfile
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from mmovss.converters.files import (
    CONVERTED_META_KEY,
    conversion_record,
    converter_version,
    save_atomically,
)

__all__ = ['WEIGHTS_DIR_ENV', 'CONVERTED_META_KEY', 'PreparedWeights', 'ReleasedWeightsError',
           'converted_path', 'download_path', 'download_weights', 'is_url', 'load_prepared',
           'prepare_weights', 'released_config_mismatch', 'released_model_of', 'weights_dir']

WEIGHTS_DIR_ENV = 'MMOVSS_WEIGHTS_DIR'
"""Environment variable: the folder for downloaded and converted checkpoints."""

_CONVERTED_DIR = 'mmovss_converted'
_MAGIC = (b'PK\x03\x04', b'\x80')  # torch.save zip archive, legacy pickle


class ReleasedWeightsError(ValueError):
    """A released checkpoint cannot be downloaded, recognised or converted."""


@dataclass
class PreparedWeights:
    """A checkpoint ready to load into an mmovss model.

    Attributes:
        path (str): A local file in mmovss's layout.
        source (str): What was asked for (file path or URL).
        format (str, optional): The converter format of the source; None
            for a file already in mmovss's layout.
        converted (bool): ``path`` is a conversion (now or cached); load it
            strictly.
        fresh (bool): The conversion was done by this call (not cached).
    """
    path: str
    source: str
    format: Optional[str] = None
    converted: bool = False
    fresh: bool = False

    @property
    def absent_prefixes(self) -> Tuple[str, ...]:
        """Key prefixes the released file lacks by design: the converter
        module's ``PRETRAINED_PREFIXES`` (parts the config fills from a named
        pretrained source, e.g. the CLIP towers of ZegFormer's releases)."""
        if not self.converted or not self.format:
            return ()
        from mmovss.converters.formats import format_module
        return tuple(getattr(format_module(self.format), 'PRETRAINED_PREFIXES', ()))


def load_prepared(model, weights: PreparedWeights, hint: str = '') -> None:
    """Loads prepared weights into ``model`` (not a DDP/TTA wrapper) with the
    strict loader of :mod:`mmovss.runtime`: every key must be filled, except
    those under :attr:`PreparedWeights.absent_prefixes`.

    Raises:
        RuntimeError: Missing or unexpected keys (a summary of each).
    """
    from mmovss.runtime import load_model_checkpoint_strictly
    load_model_checkpoint_strictly(model, weights.path, weights.absent_prefixes, hint=hint)


def _file_name(source: str) -> str:
    """The file name of a local path or of a URL's path."""
    import urllib.parse
    source = str(source)
    return osp.basename(urllib.parse.urlparse(source).path if is_url(source) else source)


def released_model_of(weights: PreparedWeights):
    """The released model (:class:`mmovss.apis.model_zoo.ModelInfo`) whose
    file a converted checkpoint was made from, else None.

    The name of the conversion's source (kept in ``meta['mmovss_converted']``)
    is compared with the ``Official File`` (or ``Weights`` file name) of the
    metafile entries.
    """
    if not weights.converted:
        return None
    from mmovss.runtime import checkpoint_meta
    record = checkpoint_meta(weights.path).get(CONVERTED_META_KEY) or {}
    names = {_file_name(v) for v in (record.get('source'), record.get('file')) if v}
    if not names:
        return None
    from .model_zoo import released_models
    try:
        releases = [info for info in released_models() if info.weights_file in names]
    except Exception:  # noqa: BLE001 - no metafiles (a packaged install without configs)
        return None
    return releases[0] if releases else None


def released_config_mismatch(config, weights: PreparedWeights) -> Optional[str]:
    """A warning when a released checkpoint is used with the config of another
    release, else None.

    Some releases share one architecture, so their checkpoints load into each
    other's configs without a missing key: ZegFormer's COCO-Stuff-156 and
    VOC-15 models (R-50 or R-101) differ only in their configs' seen classes,
    prompt templates, calibration and fusion mode
    (:func:`released_model_of` finds the release of a converted file).

    Args:
        config (str): The config file in use (anything else: None).
        weights (PreparedWeights): The prepared checkpoint.

    Returns:
        str or None: The warning (names the file, its release and its
        config).
    """
    if not isinstance(config, str) or not osp.isfile(config):
        return None
    info = released_model_of(weights)
    if info is None or osp.realpath(info.config) == osp.realpath(config):
        return None
    return (f'{info.weights_file} is the released checkpoint of {info.name} (config '
            f'{info.config}), but it is used with {config}. The weights load when the two '
            'releases share an architecture, but the results are not those of the '
            f'released model: test it with its own config ({info.config}; --benchmark KEY '
            'for another benchmark).')


def is_url(weights) -> bool:
    """Whether ``weights`` is an http(s) URL."""
    return isinstance(weights, str) and weights.startswith(('http://', 'https://'))


def weights_dir(cache_dir: Optional[str] = None) -> str:
    """The cache folder: ``cache_dir``, else ``$MMOVSS_WEIGHTS_DIR``, else
    torch hub's ``checkpoints`` folder (``$TORCH_HOME/hub/checkpoints``)."""
    folder = cache_dir or os.environ.get(WEIGHTS_DIR_ENV)
    if not folder:
        folder = osp.join(torch.hub.get_dir(), 'checkpoints')
    return osp.abspath(osp.expanduser(folder))


def _files_behind(url: str) -> list:
    """``[(file, model name)]`` of the released models whose Weights is ``url``."""
    from .model_zoo import released_models
    try:
        return [(info.weights_file, info.name) for info in released_models()
                if info.weights == url and info.weights_file]
    except Exception:  # noqa: BLE001 - only a hint for the message
        return []


def download_path(url: str, cache_dir: Optional[str] = None) -> str:
    """Where :func:`download_weights` keeps the file of ``url``.

    Raises:
        ReleasedWeightsError: ``url`` does not end with a checkpoint file
            name (:data:`mmovss.apis.model_zoo.CHECKPOINT_SUFFIXES`): a
            folder or a web page, which cannot be downloaded as one file.
    """
    from .model_zoo import _url_file_name
    name = _url_file_name(url)
    if name is None:
        files = _files_behind(url)
        file = files[0][0] if len(files) == 1 else 'FILE'
        which = '; '.join(f'{f} for {model}' for f, model in files)
        which = f' ({which})' if which else ''
        raise ReleasedWeightsError(
            f'{url} is a web page or a folder, not a checkpoint file, so it cannot be '
            f'downloaded here: open it in a browser, download the checkpoint of your '
            f'model{which} and pass it with --weights /path/to/{file} (tools/demo.py, '
            f"tools/test.py CONFIG /path/to/{file}, OpenVocabInferencer(name, weights="
            f"'/path/to/{file}')).")
    digest = hashlib.sha256(url.encode('utf-8')).hexdigest()[:8]
    return osp.join(weights_dir(cache_dir), 'mmovss', digest, name)


def _offline_message(url: str, dst: str, reason: str) -> str:
    name = osp.basename(dst)
    return (f'Cannot download the released checkpoint {url} ({reason}). Download it where '
            f'you have network and pass the file instead: --weights /path/to/{name} '
            f"(tools/demo.py, tools/test.py CONFIG /path/to/{name}, or "
            f"OpenVocabInferencer(name, weights='/path/to/{name}')), or put it at {dst} "
            f'(the cache; ${WEIGHTS_DIR_ENV} chooses another folder).')


def download_weights(url: str, cache_dir: Optional[str] = None, progress: bool = True) -> str:
    """Downloads ``url`` once into the cache; returns the local file.

    A file already at :func:`download_path` is reused when it is a complete
    ``torch.save`` file (:func:`mmovss.runtime.checkpoint_problem`); an
    incomplete one is not replaced silently (the error says to delete it).

    Raises:
        ReleasedWeightsError: No network (or the server refused), the URL
            served something that is not a checkpoint (e.g. a web page of a
            file host that needs a browser), the URL is a folder or a page
            (:func:`download_path`), or a broken cached file.
    """
    from mmovss.runtime import checkpoint_problem
    dst = download_path(url, cache_dir)
    if osp.exists(dst):
        problem = checkpoint_problem(dst)
        if problem is None:
            return dst
        raise ReleasedWeightsError(
            f'The cached download {dst} of {url} is not a usable checkpoint ({problem}). '
            'Delete it to download again, or pass a complete copy with --weights /path/to/'
            f'{osp.basename(dst)}.')
    folder = osp.dirname(dst)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ReleasedWeightsError(
            f'Cannot create the weights cache {folder} ({err}); set ${WEIGHTS_DIR_ENV} to a '
            'writable folder.') from None
    fd, part = tempfile.mkstemp(prefix=osp.basename(dst) + '.', suffix='.part', dir=folder)
    os.close(fd)
    try:
        try:
            torch.hub.download_url_to_file(url, part, progress=progress)
        except Exception as err:  # noqa: BLE001 - URLError, HTTPError, timeouts, ...
            raise ReleasedWeightsError(
                _offline_message(url, dst, f'{type(err).__name__}: {err}')) from None
        with open(part, 'rb') as f:
            head = f.read(4)
        if not head.startswith(_MAGIC):
            raise ReleasedWeightsError(_offline_message(
                url, dst, 'the server answered with something that is not a checkpoint, '
                'e.g. a web page of a file host that needs a browser'))
        os.replace(part, dst)
    finally:
        if osp.exists(part):
            os.remove(part)
    return dst


def _source_key(path: str) -> str:
    st = os.stat(path)
    ident = f'{osp.realpath(path)}|{st.st_size}|{st.st_mtime_ns}'
    return hashlib.sha256(ident.encode('utf-8')).hexdigest()[:16]


def converted_path(source: str, fmt: str, cache_dir: Optional[str] = None) -> str:
    """The cached conversion of ``source`` (a local file) from format ``fmt``."""
    stem = osp.splitext(osp.basename(source))[0]
    return osp.join(weights_dir(cache_dir), _CONVERTED_DIR,
                    f'{stem}-{fmt}-{_source_key(source)}.pth')


def _load_header(path: str) -> dict:
    """The checkpoint, read by :func:`mmovss.converters.files.read_checkpoint`
    (CRC-checked, weights-only, memory-mapped where possible; refused Python
    objects become inert stand-ins: nothing of the file's code is run)."""
    from mmovss.converters.files import read_checkpoint
    try:
        return read_checkpoint(path)
    except (ValueError, FileNotFoundError) as err:
        raise ReleasedWeightsError(str(err)) from None


def _conversion_record(checkpoint) -> Optional[dict]:
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    record = meta.get(CONVERTED_META_KEY) if isinstance(meta, dict) else None
    return record if isinstance(record, dict) else None


def _cached_conversion(dst: str, source_key: str) -> Optional[dict]:
    """The record of a usable cached conversion at ``dst``, else None.

    Raises:
        ReleasedWeightsError: ``dst`` exists but is not a conversion made
            here (it is never overwritten).
    """
    if not osp.exists(dst):
        return None
    from mmovss.runtime import checkpoint_problem
    record = None
    if checkpoint_problem(dst) is None:
        try:
            record = _conversion_record(_load_header(dst))
        except ReleasedWeightsError:
            record = None
    if record is None or record.get('source_key') != source_key:
        raise ReleasedWeightsError(
            f'{dst} exists but is not a conversion of this source made by mmovss; it is not '
            f'overwritten. Move it away, or set ${WEIGHTS_DIR_ENV} to another folder.')
    return record


def prepare_weights(weights: str, cache_dir: Optional[str] = None,
                    verbose: bool = True) -> PreparedWeights:
    """Any checkpoint (URL, official-format file, mmovss file) -> a local
    mmovss-layout file (see the module doc).

    Args:
        weights (str): A URL or a local file.
        cache_dir (str, optional): The weights cache; default
            ``$MMOVSS_WEIGHTS_DIR`` or torch hub's checkpoints folder.
        verbose (bool): Print a line when downloading or converting.

    Raises:
        FileNotFoundError: ``weights`` is neither a URL nor a file.
        ReleasedWeightsError: Offline or failed download, truncated or
            corrupt file, keys of several formats, or a file of
            a known format with unknown or missing keys (the converter's
            summary).
    """
    from mmovss.converters.common import ConversionError, unwrap_state_dict
    from mmovss.converters.formats import detect_format, format_module
    source = os.fspath(weights)
    local = download_weights(source, cache_dir) if is_url(source) else source
    if not osp.isfile(local):
        raise FileNotFoundError(
            f'Checkpoint {source!r} does not exist. Pass a checkpoint file, its URL, or a '
            'released model name (python tools/demo.py --list-models).')
    # a conversion of this very file, made earlier: no need to read the source
    folder = osp.join(weights_dir(cache_dir), _CONVERTED_DIR)
    key = _source_key(local)
    if osp.isdir(folder):
        stem = osp.splitext(osp.basename(local))[0]
        for name in sorted(os.listdir(folder)):
            if name.startswith(stem + '-') and name.endswith(f'-{key}.pth'):
                dst = osp.join(folder, name)
                record = _cached_conversion(dst, key)
                try:
                    module = format_module(record.get('format'))
                except (KeyError, ImportError):
                    continue
                if record.get('version') == converter_version(module):
                    return PreparedWeights(dst, source, record['format'], converted=True)
    checkpoint = _load_header(local)
    if _conversion_record(checkpoint) is not None:  # a converted file passed again
        return PreparedWeights(local, source, _conversion_record(checkpoint).get('format'),
                               converted=True)
    try:
        state = unwrap_state_dict(checkpoint)
        fmt = detect_format(state)
    except (ConversionError, ValueError) as err:
        raise ReleasedWeightsError(f'Checkpoint {source!r}: {err}') from None
    if fmt is None:  # mmovss's own layout (or foreign: the strict loader says so)
        return PreparedWeights(local, source)
    module = format_module(fmt)
    dst = converted_path(local, fmt, cache_dir)
    from mmovss.io import UnsafeOutputError, check_planned_outputs
    try:
        check_planned_outputs([dst], [local], flag='converted checkpoint')
    except UnsafeOutputError as err:
        raise ReleasedWeightsError(str(err)) from None
    record = _cached_conversion(dst, key)
    if record is not None and record.get('version') == converter_version(module):
        return PreparedWeights(dst, source, fmt, converted=True)
    if verbose:
        print(f'Converting {source} ({fmt}) to mmovss keys -> {dst}', flush=True)
    try:
        converted = module.convert({k: v for k, v in state.items()})
    except ConversionError as err:
        raise ReleasedWeightsError(f'Checkpoint {source!r} ({fmt}): {err}') from None
    converted = {k: v.clone() if torch.is_tensor(v) else v for k, v in converted.items()}
    meta = {CONVERTED_META_KEY: conversion_record(fmt, source, local, source_key=key)}
    if hasattr(module, 'conversion_meta'):
        meta.update(module.conversion_meta(checkpoint))
    save_atomically(dict(state_dict=converted, meta=meta), dst)
    return PreparedWeights(dst, source, fmt, converted=True, fresh=True)
