"""Short model names for the inferencer, the demo and the web UI.

As with MMSegmentation's inferencer, a model is named by a config path or a
name. Names come from, by priority:

1. ``configs/<method>/metafile.yaml`` files in MMSeg's format (``Models:``
   entries with ``Name``, optional ``Alias`` (a string or a list),
   ``Config`` relative to the repository root and optional ``Weights``);
2. the short aliases of :data:`ALIASES` below (one default per method, set
   up for users' own images: no background threshold, the method's
   COCO-Stuff evaluation geometry);
3. the file name (without ``.py``) of every config under ``configs/<method>/``.

Names are matched case-insensitively. Methods whose config points at a
pretrained tag (open_clip ``ViT-B-16`` / ``openai``, timm DINO) download
those weights on first use; names with ``Weights`` also download their
checkpoint (mmengine caches it under ``~/.cache/torch``).
"""
import difflib
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import yaml

__all__ = ['ALIASES', 'ModelInfo', 'configs_root', 'list_models',
           'get_model_info', 'resolve_model']

ALIASES: Dict[str, str] = {
    # offline toy world: the shipped tiny CLIP, nothing is downloaded
    'ovshapes-tiny': 'dense-clip_tiny-clip_ovshapes',
    # training-free methods on open_clip ViT-B-16 / openai (downloaded once)
    'maskclip': 'maskclip_vit-b16_coco_stuff171',
    'sclip': 'sclip_vit-b16_coco_stuff171',
    'clearclip': 'clearclip_vit-b16_coco_stuff171',
    'naclip': 'naclip_vit-b16_coco_stuff171',
    'naclip-pamr': 'naclip-pamr_vit-b16_coco_stuff171',
    'proxyclip': 'proxyclip_vit-b16-dino-b8_coco_stuff171',
}
"""Short name -> config name (file name under ``configs/<method>/``)."""


@dataclass
class ModelInfo:
    """A named model.

    Attributes:
        name (str): Its canonical name (metafile ``Name`` or config name).
        config (str): Absolute path of its config file.
        weights (str, optional): Checkpoint path or URL; None when the config
            alone is enough (training-free methods, pretrained tags).
        aliases (list[str]): Other names of the same model.
    """
    name: str
    config: str
    weights: Optional[str] = None
    aliases: List[str] = field(default_factory=list)


def configs_root() -> str:
    """The ``configs/`` folder of this installation.

    The repository's (editable installs and source checkouts), else the
    ``mmovss/.mim/configs`` copy of a packaged installation.
    """
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    for candidate in (osp.join(osp.dirname(package), 'configs'),
                      osp.join(package, '.mim', 'configs')):
        if osp.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f'Cannot find the configs/ folder next to {package}; install mmovss '
        f'from its repository (pip install -e .) or pass a config file path.')


def _metafile_models(root: str) -> List[ModelInfo]:
    repo = osp.dirname(root)
    models = []
    for method in sorted(os.listdir(root)):
        for fname in ('metafile.yaml', 'metafile.yml'):
            path = osp.join(root, method, fname)
            if not osp.isfile(path):
                continue
            with open(path, encoding='utf-8') as f:
                meta = yaml.safe_load(f) or {}
            for entry in meta.get('Models', []) or []:
                aliases = entry.get('Alias', []) or []
                if isinstance(aliases, str):
                    aliases = [aliases]
                weights = entry.get('Weights')
                if isinstance(weights, list):
                    weights = weights[0] if weights else None
                config = entry['Config']
                if not osp.isabs(config):
                    config = osp.join(repo, config)
                models.append(
                    ModelInfo(entry['Name'], osp.abspath(config), weights,
                              list(aliases)))
    return models


def _config_models(root: str) -> List[ModelInfo]:
    models = []
    for method in sorted(os.listdir(root)):
        folder = osp.join(root, method)
        if method.startswith('_') or not osp.isdir(folder):
            continue
        for fname in sorted(os.listdir(folder)):
            if fname.endswith('.py'):
                models.append(
                    ModelInfo(fname[:-3], osp.abspath(osp.join(folder,
                                                               fname))))
    return models


def _name_table(root: Optional[str] = None) -> Dict[str, ModelInfo]:
    """Lower-cased name or alias -> model, by the priority of the module doc."""
    root = root or configs_root()
    table: Dict[str, ModelInfo] = {}
    by_config: Dict[str, ModelInfo] = {}
    for info in _metafile_models(root):
        by_config.setdefault(info.name.lower(), info)
        for key in [info.name, *info.aliases]:
            table.setdefault(key.lower(), info)
    for info in _config_models(root):
        if info.name.lower() not in table:
            table[info.name.lower()] = info
            by_config[info.name.lower()] = info
    for alias, target in ALIASES.items():
        info = by_config.get(target.lower())
        if info is not None and alias.lower() not in table:
            info.aliases.append(alias)
            table[alias.lower()] = info
    return table


def list_models(root: Optional[str] = None) -> List[str]:
    """Every model name and alias, sorted (short aliases first)."""
    table = _name_table(root)
    short = sorted(a for a in ALIASES if a.lower() in table)
    rest = sorted(n for n in table if n not in {a.lower() for a in short})
    return short + rest


def get_model_info(name: str, root: Optional[str] = None) -> ModelInfo:
    """Looks a model name or alias up.

    Raises:
        ValueError: Unknown name (close names and the way to list all of
            them are given).
    """
    table = _name_table(root)
    info = table.get(name.lower())
    if info is None:
        close = difflib.get_close_matches(name.lower(), list(table), n=3)
        hint = f' Did you mean: {", ".join(close)}?' if close else ''
        raise ValueError(
            f'Unknown model name {name!r}.{hint} Pass a config file path '
            f'(configs/<method>/<name>.py) or a name listed by '
            f'`python tools/demo.py --list-models` (short names: '
            f'{", ".join(sorted(a for a in ALIASES if a in table))}).')
    return info


def resolve_model(model: str, weights: Optional[str] = None
                  ) -> Tuple[str, Optional[str]]:
    """A config path or model name -> (config path, weights).

    Args:
        model (str): A config file (``*.py``) or a model name / alias.
        weights (str, optional): A checkpoint that overrides the name's.

    Raises:
        FileNotFoundError: ``model`` looks like a path but is no file.
        ValueError: Unknown model name.
    """
    model = os.fspath(model)
    if osp.isfile(model):
        return model, weights
    if model.endswith('.py') or os.sep in model:
        raise FileNotFoundError(
            f'Config file {model!r} does not exist. Pass an existing config '
            f'(configs/<method>/<name>.py) or a model name listed by '
            f'`python tools/demo.py --list-models`.')
    info = get_model_info(model)
    return info.config, weights if weights is not None else info.weights
