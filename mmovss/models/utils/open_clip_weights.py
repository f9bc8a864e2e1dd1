"""Builds open_clip models by name and loads their weights, offline-aware.

Weights come from one of three places:

* an open_clip pretrained tag (``pretrained='openai'``,
  ``'laion2b_s29b_b131k_ft_soup'``, ...): the file is taken from open_clip's
  local cache if it is there, else downloaded by open_clip as usual. When the
  download host cannot be reached, :class:`PretrainedWeightsUnavailable` is
  raised at once (instead of open_clip's minute of retries), naming the tag
  and showing how to pass a local file;
* a local checkpoint file (``pretrained='/path/to/file'``), in open_clip's
  format (a state dict, possibly wrapped in ``{'state_dict': ...}`` with a
  ``module.`` prefix, ``.pt``/``.pth``/``.bin``/``.safetensors``) or in
  OpenAI's format (the TorchScript archive of github.com/openai/CLIP or its
  state dict, float16 with ``input_resolution``/``context_length``/
  ``vocab_size`` entries);
* nothing (``pretrained=None``): random weights, e.g. from a model-config dict
  in tests.

Every loaded model carries a *weights identity* string used to key caches of
derived results (text embeddings): the tag, or the SHA-256 of the file.
"""
import copy
import difflib
import hashlib
import os
import socket
import warnings
import zipfile
from typing import List, Optional, Sequence, Tuple
from urllib.parse import urlparse

import torch
import torch.nn as nn

from mmovss.io.file_memo import memoised_per_file_version

from .config_defaults import registered_default

__all__ = [
    'PretrainedWeightsUnavailable', 'WeightFileError', 'build_open_clip', 'load_clip_state_dict',
    'fetch_pretrained_clip_weights', 'file_sha256', 'module_fingerprint', 'resolve_pretrained_tag',
    'tag_quick_gelu'
]

_OPENAI_EXTRA_KEYS = ('input_resolution', 'context_length', 'vocab_size')


class WeightFileError(RuntimeError):
    """Pretrained weights that cannot be read, do not fit the model or cannot
    be downloaded: the user's file or network, not a bug (tools report the
    message without a traceback)."""


class PretrainedWeightsUnavailable(WeightFileError):
    """An open_clip pretrained tag needs a download that cannot happen."""


def _offline_message(model_name: str, tag: str, reason: str,
                     config_keys: Optional[Sequence[str]] = None) -> str:
    """One line (the tools print it as ``error: …``): what is missing, why,
    and the two fixes, the command-line one first.

    Args:
        config_keys: The config keys that name the tag (e.g.
            ``model.decode_head.clip.pretrained``); None: the usual two,
            ``model.backbone.pretrained`` and ``model.text_encoder.pretrained``.
    """
    reason = ' '.join(str(reason).split())  # a library's multi-line reason
    keys = list(config_keys or ('model.backbone.pretrained', 'model.text_encoder.pretrained'))
    options = ' '.join(f'{k}=/path/to/{model_name}.pt' for k in keys)
    return (
        f"open_clip pretrained weights '{tag}' of model '{model_name}' are not "
        f'in the local cache and cannot be downloaded ({reason}). Pass a local '
        f'checkpoint file (open_clip or OpenAI format) instead of the tag: '
        f'--cfg-options {options} (the same keys '
        f'in a config file or in cfg_options), or run once on a machine with '
        f"network access (open_clip.create_model('{model_name}', "
        f"pretrained='{tag}') fills the cache).")


def _host_reachable(host: str, timeout: float = 3.0) -> Tuple[bool, str]:
    """Checks quickly (DNS + TCP connect) whether a download host answers."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True, ''
    except OSError as e:
        return False, f'{host} is unreachable: {e}'


def _cached_tag_file(pretrained_cfg: dict,
                     cache_dir: Optional[str]) -> Optional[str]:
    """The locally cached file of a pretrained tag, without any network."""
    if pretrained_cfg.get('file'):
        return pretrained_cfg['file']
    hf_hub = pretrained_cfg.get('hf_hub', '')
    if hf_hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - hub is an open_clip dep
            try_to_load_from_cache = None
        if try_to_load_from_cache is not None:
            model_id, filename = os.path.split(hf_hub)
            candidates = ([filename] if filename else [
                'open_clip_model.safetensors', 'open_clip_pytorch_model.bin'
            ])
            if filename.endswith(('.bin', '.pth')):
                candidates.insert(0, filename[:-4] + '.safetensors')
            for name in candidates:
                found = try_to_load_from_cache(
                    model_id, name, cache_dir=cache_dir)
                if isinstance(found, str) and os.path.isfile(found):
                    return found
    url = pretrained_cfg.get('url', '')
    if url:
        target = os.path.join(cache_dir or os.path.expanduser('~/.cache/clip'),
                              os.path.basename(url))
        if os.path.isfile(target):
            return target
    return None


def resolve_pretrained_tag(model_name: str,
                           tag: str,
                           cache_dir: Optional[str] = None,
                           config_keys: Optional[Sequence[str]] = None) -> str:
    """The local file of an open_clip pretrained tag, downloading if needed.

    Args:
        config_keys: The config keys that name the tag, for the message of a
            failed download (None: ``model.backbone`` / ``model.text_encoder``).

    Raises:
        ValueError: If ``tag`` is not a tag of ``model_name``.
        PretrainedWeightsUnavailable: If the file is not cached and the
            download host cannot be reached (or ``HF_HUB_OFFLINE`` is set).
    """
    import open_clip
    from open_clip.pretrained import download_pretrained
    pretrained_cfg = open_clip.get_pretrained_cfg(model_name, tag)
    if not pretrained_cfg:
        raise ValueError(
            f"'{tag}' is neither a file nor an open_clip pretrained tag of "
            f"'{model_name}'; known tags: "
            f'{open_clip.list_pretrained_tags_by_model(model_name)}.')
    cached = _cached_tag_file(pretrained_cfg, cache_dir)
    if cached is not None:
        return cached
    if os.environ.get('HF_HUB_OFFLINE', '0').lower() in ('1', 'true', 'yes'):
        raise PretrainedWeightsUnavailable(
            _offline_message(model_name, tag, 'HF_HUB_OFFLINE is set', config_keys))
    host = ('huggingface.co' if pretrained_cfg.get('hf_hub') else
            urlparse(pretrained_cfg.get('url', '')).hostname)
    reachable, reason = _host_reachable(host)
    if not reachable:
        raise PretrainedWeightsUnavailable(
            _offline_message(model_name, tag, reason, config_keys))
    try:
        return download_pretrained(pretrained_cfg, cache_dir=cache_dir)
    except Exception as e:  # network errors of urllib / huggingface_hub
        raise PretrainedWeightsUnavailable(
            _offline_message(model_name, tag, f'download failed: {e}', config_keys)) from e


def fetch_pretrained_clip_weights(model_cfg: dict) -> List[str]:
    """The local file of every open_clip pretrained tag in a model config,
    downloaded now if needed (:func:`resolve_pretrained_tag`).

    ``tools/test.py`` and ``tools/train.py`` call it before the runner is
    built, so that a tag that cannot be downloaded (offline) is reported at
    once as the only output, not after mmengine's environment report and
    the whole config (about 280 lines) and the datasets' scan. Parts whose
    ``pretrained`` is a file, None or not a tag of their model (an error of
    the build, with its own message) are left to the build; the files found
    are the ones the build loads.

    Args:
        model_cfg (dict): ``cfg.model``.

    Returns:
        list[str]: The local files of the tags (may repeat).

    Raises:
        PretrainedWeightsUnavailable: A tag is not cached and cannot be
            downloaded.
    """
    import open_clip

    from .clip_consistency import clip_parts
    tags = []  # (path, name, tag, cache dir) of each part that names a tag
    for path, part in clip_parts(dict(model_cfg or {})):
        name = part.get('model_name', registered_default(part, 'model_name'))
        tag = part.get('pretrained', registered_default(part, 'pretrained'))
        if not (isinstance(name, str) and isinstance(tag, str) and tag) or \
                os.path.isfile(os.path.expanduser(tag)) or \
                not open_clip.get_pretrained_cfg(name, tag):
            continue
        tags.append((path, name, tag, part.get('download_cache_dir', part.get('cache_dir'))))
    # the message names every key that gives the same weights (SAN's decode_head.clip, ...)
    return [resolve_pretrained_tag(name, tag, cache_dir, [
        f'model.{p}.pretrained' for p, n, t, _ in tags if (n, t) == (name, tag)])
        for _, name, tag, cache_dir in tags]


@memoised_per_file_version
def file_sha256(path: str) -> str:
    """SHA-256 of a file, memoised per (path, size, mtime) in this process."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 24), b''):
            digest.update(block)
    return digest.hexdigest()


def module_fingerprint(module: nn.Module) -> str:
    """A content hash of a module's parameters and buffers (names included)."""
    digest = hashlib.blake2b(digest_size=20)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        data = tensor.detach().cpu().contiguous()
        digest.update(data.view(torch.uint8).numpy().tobytes()
                      if data.numel() else b'')
    return digest.hexdigest()


def _is_torchscript(path: str) -> bool:
    """Whether a file is a TorchScript archive (a zip with ``code/``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split('/')[1:2] == ['code']
                   for name in archive.namelist())


def load_clip_state_dict(path: str) -> Tuple[dict, bool]:
    """Reads a CLIP checkpoint file in open_clip or OpenAI format.

    Args:
        path (str): ``.pt``/``.pth``/``.bin`` (a state dict, or a dict with a
            ``state_dict`` or ``model`` entry; a ``module.`` prefix is
            removed), ``.safetensors``, or an OpenAI TorchScript archive.

    Returns:
        tuple[dict, bool]: The state dict (tensors on CPU, OpenAI's extra
        entries removed) and whether the file is in OpenAI's format.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'CLIP checkpoint file not found: {path!r}; `pretrained` must be '
            f'an open_clip tag or an existing file.')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        checkpoint = load_file(path, device='cpu')
    elif _is_torchscript(path):  # OpenAI's released files
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)
            checkpoint = torch.jit.load(path, map_location='cpu')
    else:
        try:
            checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise WeightFileError(
                f'Cannot read CLIP checkpoint {path!r}: it is neither a state '
                f'dict readable by torch.load(weights_only=True) nor a '
                f'TorchScript archive ({e}).') from e
    if isinstance(checkpoint, torch.jit.ScriptModule):
        checkpoint = checkpoint.state_dict()
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model'):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not checkpoint:
        raise WeightFileError(f'CLIP checkpoint {path!r} holds no state dict.')
    state_dict = dict(checkpoint)
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    is_openai = any(k in state_dict for k in _OPENAI_EXTRA_KEYS)
    for key in _OPENAI_EXTRA_KEYS:
        state_dict.pop(key, None)
    return state_dict, is_openai


def _load_into(model: nn.Module, state_dict: dict, path: str) -> None:
    from open_clip.model import (
        convert_to_custom_text_state_dict,
        resize_pos_embed,
        resize_text_pos_embed,
    )
    if 'positional_embedding' in state_dict and not hasattr(
            model, 'positional_embedding'):
        state_dict = convert_to_custom_text_state_dict(state_dict)
    if 'logit_scale' in state_dict and \
            state_dict['logit_scale'].ndim != model.logit_scale.ndim:
        state_dict['logit_scale'] = state_dict['logit_scale'].reshape(
            model.logit_scale.shape)
    # TorchScript archives also hold non-persistent buffers (attn_mask).
    non_persistent = {n for n, _ in model.named_buffers()} - set(
        model.state_dict())
    state_dict = {k: v for k, v in state_dict.items()
                  if k not in non_persistent}
    # Resize in float32: the model is float32, and float16 files (OpenAI's)
    # would fail in bicubic interpolation, which has no float16 CPU kernel.
    for key in ('visual.positional_embedding', 'positional_embedding'):
        if key in state_dict and state_dict[key].is_floating_point():
            state_dict[key] = state_dict[key].float()
    hint = ('Check that `model_name` (or `model_cfg`) names the '
            'architecture the file was saved from.')
    try:
        resize_pos_embed(state_dict, model)
        resize_text_pos_embed(state_dict, model)
    except (RuntimeError, ValueError, AssertionError) as e:  # another grid or width
        raise WeightFileError(f'CLIP checkpoint {path!r} does not fit the model: '
                              f'its positional embedding cannot be resized to '
                              f'the model\'s ({e}).\n{hint}') from e
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise WeightFileError(f'CLIP checkpoint {path!r} does not fit the model: '
                           f'{e}\n{hint}') from e
    if result.missing_keys or result.unexpected_keys:
        raise WeightFileError(
            f'CLIP checkpoint {path!r} does not fit the model: '
            f'{len(result.missing_keys)} missing keys '
            f'{result.missing_keys[:5]}, {len(result.unexpected_keys)} '
            f'unexpected keys {result.unexpected_keys[:5]}. {hint}')


def tag_quick_gelu(model_name: str, pretrained: str) -> Optional[bool]:
    """Whether an open_clip pretrained tag's weights use QuickGELU.

    ``openai`` tags do (their towers were trained with it); None for a tag
    open_clip does not know for that model.
    """
    import open_clip
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    return bool(tag_cfg.get('quick_gelu', False)) if tag_cfg else None


def build_open_clip(model_name: Optional[str] = None,
                    pretrained: Optional[str] = None,
                    model_cfg: Optional[dict] = None,
                    quick_gelu: Optional[bool] = None,
                    cache_dir: Optional[str] = None) -> Tuple[nn.Module, str]:
    """Builds an open_clip model (float32, CPU, eval mode) and loads weights.

    Args:
        model_name (str, optional): An open_clip model name (``'ViT-B-16'``,
            ``'convnext_large_d_320'``, see ``open_clip.list_models()``).
        pretrained (str, optional): An open_clip pretrained tag of that
            model, a local checkpoint path, or None for random weights.
        model_cfg (dict, optional): An open_clip model-config dict used
            instead of ``model_name`` (tiny models in tests).
        quick_gelu (bool, optional): Use QuickGELU activations. None takes
            the tag's setting (``openai`` weights use QuickGELU), True for
            OpenAI-format files, else the model config's.
        cache_dir (str, optional): open_clip's download cache directory.

    Returns:
        tuple[nn.Module, str]: The model and its weights identity
        (``'tag:<name>/<tag>'``, ``'sha256:<hex>'`` or ``'random'``).
    """
    import open_clip
    if (model_name is None) == (model_cfg is None):
        raise ValueError('Give exactly one of `model_name` (an open_clip '
                         'model name) and `model_cfg` (a model-config dict).')
    if model_cfg is not None:
        cfg = copy.deepcopy(dict(model_cfg))
        label = 'model_cfg'
    else:
        cfg = open_clip.get_model_config(model_name)
        if cfg is None:
            known = open_clip.list_models()
            by_lower = {name.lower(): name for name in known}
            close = difflib.get_close_matches(
                str(model_name).lower(), list(by_lower), n=3, cutoff=0.6)
            names = ', '.join(repr(by_lower[c]) for c in close)
            hint = f'did you mean {names}? ' if close else ''
            raise ValueError(
                f"Unknown open_clip model name '{model_name}'; {hint}see "
                f'open_clip.list_models() (e.g. ViT-B-16, ViT-L-14, '
                f'convnext_large_d_320).')
        cfg = copy.deepcopy(cfg)
        label = model_name

    state_dict, is_openai, path = None, False, None
    if pretrained is None:
        identity = 'random'
    elif os.path.isfile(os.fspath(pretrained)):
        path = os.fspath(pretrained)
        state_dict, is_openai = load_clip_state_dict(path)
        identity = f'sha256:{file_sha256(path)}'
    elif model_name is None:
        raise ValueError(
            f'pretrained={pretrained!r} is not an existing file; with '
            f'`model_cfg` only local files can be loaded.')
    else:
        if quick_gelu is None:
            quick_gelu = tag_quick_gelu(model_name, pretrained)
        path = resolve_pretrained_tag(model_name, pretrained, cache_dir)
        state_dict, _ = load_clip_state_dict(path)
        identity = f'tag:{model_name}/{pretrained}'

    if quick_gelu is None and is_openai:
        quick_gelu = True
    if quick_gelu is not None:
        cfg['quick_gelu'] = bool(quick_gelu)
    custom_text = cfg.pop('custom_text', False) or \
        'hf_model_name' in cfg.get('text_cfg', {})
    if 'timm_model_name' in cfg.get('vision_cfg', {}):
        cfg['vision_cfg']['timm_model_pretrained'] = False
    model_cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        model = model_cls(**cfg)
    model = model.float().eval()
    if state_dict is not None:
        _load_into(model, state_dict, path)
    model.weights_identity = identity
    model.model_label = label
    return model, identity
