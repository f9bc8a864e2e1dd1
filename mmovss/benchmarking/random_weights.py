"""Random stand-ins for every weight source of a model config.

A benchmark times the architecture, not the weights: without a checkpoint,
open_clip ``pretrained`` tags or files, timm ``pretrained=True`` (e.g.
ProxyCLIP's DINO), mmengine ``init_cfg=dict(type='Pretrained', ...)`` and
SAM checkpoints are replaced by random initialisation, so nothing is read or
downloaded while the network stays the same.
"""
from typing import List, Optional

import torch

SAM_MARKER = '_benchmark_full_sam'


def keep_activation(node: dict, pretrained) -> None:
    """Keeps the activation an open_clip tag implies once it is dropped.

    open_clip builds OpenAI-trained towers (``pretrained='openai'``) with
    QuickGELU (``build_open_clip`` reads it from the tag through
    :func:`mmovss.models.utils.open_clip_weights.tag_quick_gelu`); without
    the tag a random model would get GELU, a different network (mmseg's SAN
    and CLIPTextEncoder use QuickGELU too).
    """
    import os.path as osp
    name = node.get('model_name')
    if not isinstance(pretrained, str) or not isinstance(name, str) or \
            node.get('quick_gelu') is not None or osp.isfile(pretrained):
        return
    from mmovss.models.utils.open_clip_weights import tag_quick_gelu
    if tag_quick_gelu(name, pretrained):
        node['quick_gelu'] = True  # other tags: the default GELU


def use_random_weights(model_cfg, notes: Optional[List[str]] = None):
    """Replaces every weight source of a model config by random init.

    In place, recursively: ``pretrained`` fields (open_clip tags or files,
    timm's ``pretrained=True``, mmseg's segmentor ``pretrained``) become
    None, ``init_cfg`` entries of type ``'Pretrained'`` are dropped, and a
    ``SAMMaskGenerator`` without weights is marked for a random SAM of its
    ``model_type`` (see :func:`sam_marker` and :func:`randomize_sam`).

    Args:
        model_cfg (dict): The ``model`` part of a config.
        notes (list[str], optional): Receives one line per kind of change.

    Returns:
        The same config.
    """
    found = set()

    def visit(node):
        if isinstance(node, dict):
            if node.get('type') == 'SAMMaskGenerator' and \
                    node.get('model_cfg') is None:
                node['checkpoint'] = None
                # Built tiny here, replaced by a full-size random SAM after
                # the build (randomize_sam): the generator refuses to build
                # a full SAM without a checkpoint.
                node['model_cfg'] = dict()
                node[SAM_MARKER] = node.get('model_type', 'vit_h')
                found.add(f'SAM {node[SAM_MARKER]}: random '
                          f'weights at full size (its masks are meaningless)')
            for key in list(node):
                value = node[key]
                if key == 'pretrained' and value not in (None, False):
                    keep_activation(node, value)
                    node[key] = None
                    found.add('pretrained weights replaced by random ones')
                elif key == 'init_cfg' and value is not None:
                    kept = [c for c in (value if isinstance(value, list)
                                        else [value])
                            if not (isinstance(c, dict)
                                    and c.get('type') == 'Pretrained')]
                    if len(kept) != (len(value) if isinstance(value, list)
                                     else 1):
                        found.add('Pretrained init_cfg dropped')
                    node[key] = (kept if isinstance(value, list) else
                                 (kept[0] if kept else None))
                else:
                    visit(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)

    visit(model_cfg)
    if notes is not None:
        notes.extend(sorted(found))
    return model_cfg


def pop_sam_markers(model_cfg) -> None:
    """Removes the markers :func:`use_random_weights` left (before build)."""
    if isinstance(model_cfg, dict):
        model_cfg.pop(SAM_MARKER, None)
        for value in model_cfg.values():
            pop_sam_markers(value)
    elif isinstance(model_cfg, (list, tuple)):
        for item in model_cfg:
            pop_sam_markers(item)


def sam_marker(model_cfg) -> Optional[str]:
    """The SAM ``model_type`` :func:`use_random_weights` marked, or None."""
    if isinstance(model_cfg, dict):
        if model_cfg.get(SAM_MARKER):
            return model_cfg[SAM_MARKER]
        values = model_cfg.values()
    elif isinstance(model_cfg, (list, tuple)):
        values = model_cfg
    else:
        return None
    for value in values:
        found = sam_marker(value)
        if found:
            return found
    return None


def randomize_sam(model: torch.nn.Module, model_type: str,
                  seed: int = 0) -> int:
    """Gives every ``SAMMaskGenerator`` a random SAM of ``model_type``.

    ``segment_anything.sam_model_registry[model_type]()`` builds the
    released architecture (``vit_h``, ``vit_l``, ``vit_b``) with random
    weights; nothing is read or downloaded.

    Returns:
        int: The number of generators changed.
    """
    from segment_anything import sam_model_registry

    import mmovss  # noqa: F401  (registers SAMMaskGenerator)

    from mmseg.registry import MODELS
    generator_cls = MODELS.get('SAMMaskGenerator')
    count = 0
    for module in model.modules():
        if isinstance(module, generator_cls):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                sam = sam_model_registry[model_type]()
            module.sam = sam.eval().requires_grad_(False)
            count += 1
    return count


def quiet_init_weights(model: torch.nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter log lines."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
