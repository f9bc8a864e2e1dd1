"""Short model names for the inferencer, the demo and the web UI.

As with MMSegmentation's inferencer, a model is named by a config path or a
name. Names come from, by priority:

1. ``configs/<method>/metafile.yaml`` files in MMSeg's format (``Models:``
   entries with ``Name``, optional ``Alias`` (a string or a list),
   ``Config`` relative to the repository root, optional ``Weights`` (the
   released checkpoint's URL) and optional ``Results``: the published mIoU
   per benchmark, one dict or a list of dicts ``{Task, Dataset, Metrics:
   {mIoU: x}, Source}``; ``Dataset`` is a benchmark key of
   :data:`mmovss.protocols.BENCHMARK_KEYS` or a usual name of it (``A-847``,
   ``PC-59``, ``PAS-20``..., see :func:`benchmark_key`), ``Source`` the
   paper table or README the number comes from (else the entry's or its
   collection's ``Source`` / ``Paper`` / ``README``);
2. the short aliases of :data:`ALIASES` below (one default per method, set
   up for users' own images: no background threshold, the method's
   COCO-Stuff evaluation geometry);
3. the file name (without ``.py``) of every config under ``configs/<method>/``.

Names are matched case-insensitively. Methods whose config points at a
pretrained tag (open_clip ``ViT-B-16`` / ``openai``, timm DINO) download
those weights on first use; names with ``Weights`` also download their
checkpoint once, recognise its format by its keys, convert it to mmovss's
layout and cache the converted file (:mod:`mmovss.apis.released_weights`).
"""
import difflib
import os
import os.path as osp
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import yaml

__all__ = ['ALIASES', 'ModelInfo', 'PublishedResult', 'benchmark_key', 'configs_root',
           'list_models', 'get_model_info', 'name_conflicts', 'released_models',
           'resolve_model']

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


# Usual names of the benchmarks in papers and READMEs, normalised by
# _normalise (lower case, letters and digits only) -> benchmark key.
_BENCHMARK_NAMES: Dict[str, str] = {
    'a847': 'ade20k_847', 'ade847': 'ade20k_847', 'ade20kfull': 'ade20k_847',
    'a150': 'ade20k_150', 'ade150': 'ade20k_150', 'ade20k': 'ade20k_150',
    'pc459': 'pascal_context_459', 'pascalcontextfull': 'pascal_context_459',
    'pc59': 'pascal_context_59', 'pascalcontext': 'pascal_context_59',
    'pc60': 'pascal_context_60',
    'pas20': 'voc20', 'pascalvoc20': 'voc20', 'voc2012': 'voc20',
    'pas21': 'voc21', 'pascalvoc21': 'voc21',
    'pas20b': 'voc20b', 'pascalvoc20b': 'voc20b',
    'cocostuff': 'coco_stuff171', 'cocostuff164k': 'coco_stuff171',
    'cocostuff171': 'coco_stuff171',
}


def _normalise(name: str) -> str:
    return re.sub(r'[^a-z0-9]', '', str(name).lower())


def benchmark_key(dataset: str) -> Optional[str]:
    """The benchmark key of a metafile ``Dataset`` name, or None.

    A key of :data:`mmovss.protocols.BENCHMARK_KEYS` (any case, ``-`` or
    ``_``) or a usual name of the open-vocabulary literature: ``A-847``,
    ``A-150`` / ``ADE20K``, ``PC-459``, ``PC-59`` / ``Pascal Context``,
    ``PC-60``, ``PAS-20`` / ``VOC2012``, ``PAS-21``, ``PAS-20b``, ``COCO-Stuff``.
    ``Pascal VOC`` alone is ambiguous (20 or 21 classes) and is not
    recognised.
    """
    from mmovss.protocols import BENCHMARK_KEYS
    norm = _normalise(dataset)
    for key in BENCHMARK_KEYS:
        if _normalise(key) == norm:
            return key
    return _BENCHMARK_NAMES.get(norm)


@dataclass
class PublishedResult:
    """A published number of a released model (metafile ``Results`` item).

    Attributes:
        dataset (str): The metafile's ``Dataset``, as written.
        benchmark (str, optional): Its benchmark key (:func:`benchmark_key`);
            None when it is not recognised (the model-zoo test fails then).
        miou (float, optional): ``Metrics: {mIoU: x}``.
        source (str): Where the number is published (paper table, README).
        task (str): The metafile's ``Task``.
    """
    dataset: str
    benchmark: Optional[str]
    miou: Optional[float]
    source: str = ''
    task: str = ''


@dataclass
class ModelInfo:
    """A named model.

    Attributes:
        name (str): Its canonical name (metafile ``Name`` or config name).
        config (str): Absolute path of its config file.
        weights (str, optional): Checkpoint path or URL; None when the config
            alone is enough (training-free methods, pretrained tags).
        aliases (list[str]): Other names of the same model.
        results (list[PublishedResult]): Published numbers (metafile
            ``Results``); empty for names that come from config files.
        metafile (str, optional): The metafile that declares the model.
        weights_file (str, optional): The released file's name: the
            metafile's ``Metadata: {Official File: ...}``, else the last
            part of the ``Weights`` URL (for a URL of a folder or a web page,
            e.g. a Google Drive folder that holds several checkpoints, the
            metafile must name the file).
    """
    name: str
    config: str
    weights: Optional[str] = None
    aliases: List[str] = field(default_factory=list)
    results: List[PublishedResult] = field(default_factory=list)
    metafile: Optional[str] = None
    weights_file: Optional[str] = None


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


CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt', '.pkl', '.bin', '.tar', '.safetensors')
"""File name endings of a URL that is the checkpoint file itself."""


def _url_file_name(url: str) -> Optional[str]:
    """The file name a URL ends with, None for folder or page URLs."""
    import urllib.parse
    name = osp.basename(urllib.parse.urlparse(str(url)).path)
    return name if name.lower().endswith(CHECKPOINT_SUFFIXES) else None


def _source_of(*nodes) -> str:
    """The first ``Source`` (else ``Paper`` URL / title, else ``README``)."""
    for key in ('Source', 'Paper', 'README'):
        for node in nodes:
            value = (node or {}).get(key)
            if isinstance(value, dict):
                value = value.get('URL') or value.get('Title')
            if value:
                return str(value).strip()
    return ''


def _results(entry: dict, collection: dict) -> List[PublishedResult]:
    items = entry.get('Results') or []
    if isinstance(items, dict):
        items = [items]
    results = []
    for item in items:
        metrics = item.get('Metrics') or {}
        miou = metrics.get('mIoU', metrics.get('miou'))
        dataset = str(item.get('Dataset', ''))
        results.append(PublishedResult(
            dataset=dataset, benchmark=benchmark_key(dataset),
            miou=None if miou is None else float(miou),
            source=_source_of(item, entry, collection), task=str(item.get('Task', ''))))
    return results


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
            collections = {c.get('Name'): c for c in meta.get('Collections', []) or []
                           if isinstance(c, dict)}
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
                collection = collections.get(entry.get('In Collection')) or {}
                metadata = entry.get('Metadata') or {}
                weights_file = metadata.get('Official File') if isinstance(
                    metadata, dict) else None
                if weights and not weights_file:
                    weights_file = _url_file_name(weights)
                models.append(
                    ModelInfo(entry['Name'], osp.abspath(config), weights,
                              list(aliases), _results(entry, collection),
                              osp.abspath(path), weights_file))
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


def released_models(root: Optional[str] = None) -> List[ModelInfo]:
    """Every metafile entry with ``Weights`` (a released checkpoint), in
    metafile order (methods sorted by folder name)."""
    return [info for info in _metafile_models(root or configs_root()) if info.weights]


def name_conflicts(root: Optional[str] = None) -> List[str]:
    """Names or aliases that would resolve to more than one model.

    A metafile name or alias that two entries share, or that equals the
    file name of another config (the metafile wins silently in
    :func:`get_model_info`), or a short alias of :data:`ALIASES` that a
    metafile also uses for another config. Empty when every name is
    unique.

    Returns:
        list[str]: One line per conflict, naming both sides.
    """
    root = root or configs_root()
    seen: Dict[str, Tuple[str, Optional[str], str]] = {}
    problems = []

    def claim(name, config, weights, where):
        key = name.lower()
        if key in seen:
            other = seen[key]
            if (other[0], other[1]) != (config, weights):
                problems.append(f'{name!r} names {osp.relpath(config, root)} ({where}) and '
                                f'{osp.relpath(other[0], root)} ({other[2]})')
            return
        seen[key] = (config, weights, where)

    for info in _metafile_models(root):
        where = osp.relpath(info.metafile, root)
        for name in [info.name, *info.aliases]:
            claim(name, info.config, info.weights, where)
    configs = {info.name.lower(): info for info in _config_models(root)}
    for key, info in configs.items():
        if key in seen and seen[key][0] != info.config:
            problems.append(f'{info.name!r} is the config {osp.relpath(info.config, root)} and '
                            f'a name in {seen[key][2]} for {osp.relpath(seen[key][0], root)}')
    for alias, target in ALIASES.items():
        if alias.lower() in seen and alias.lower() not in configs:
            config = seen[alias.lower()][0]
            if osp.splitext(osp.basename(config))[0].lower() != target.lower():
                problems.append(f'short alias {alias!r} (-> {target}) is also a name in '
                                f'{seen[alias.lower()][2]}')
    return problems


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
