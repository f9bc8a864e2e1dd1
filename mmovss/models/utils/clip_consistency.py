"""Build-time checks that the CLIP parts of a model config belong together.

An open-vocabulary segmentor names its CLIP several times: the image tower
(``model.backbone``), the text tower (``model.text_encoder``) and, for some
methods, a third copy (SAN's ``decode_head.clip``, the region classifier's
``clip`` of ZegFormer / OVSeg). A config that swaps the CLIP by inheritance
(``_base_`` + ``model = dict(backbone=dict(model_name=...))``) or on the
command line (``--cfg-options model.backbone.pretrained=FILE``) can change one
of them and forget the others. When the embedding widths happen to agree the
model builds and runs, and scores image features of one CLIP against text
embeddings of another: numbers that look plausible and are wrong (OVShapes
NACLIP, the tiny CLIP's image tower swapped for an earlier one: 30.3 -> 19.5
mIoU, no message). Likewise, the data preprocessor's ``mean`` / ``std`` are
written in the config while the CLIP's training normalisation is a property of
its pretrained tag (SigLIP: 0.5 / 0.5, OpenAI CLIP: 0.481... / 0.268...).

:func:`check_clip_consistency` refuses both before anything is built or
downloaded. :func:`stale_clip_variables` finds the third way to swap a CLIP
that does nothing: a child config (or ``--cfg-options``) that sets the base's
variable ``clip_model`` / ``clip_pretrained``. mmengine substitutes a base's
variables when it reads the base, so the model fields keep the old CLIP.
"""
import json
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple

from .config_defaults import registered_default

__all__ = ['clip_parts', 'check_same_clip', 'check_clip_normalisation',
           'check_input_unnormalisation', 'check_region_classifier_normalisation',
           'check_clip_consistency', 'stale_clip_variables']

#: Tolerance on the 0-255 scale: the published codes round CLIP's constants
#: (122.771 for 122.7709383); ImageNet's 123.675 is a different normalisation.
_NORM_ATOL = 0.5


def _same_normalisation(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> bool:
    """Whether two ``(mean, std)`` pairs agree within :data:`_NORM_ATOL`."""
    return all(len(x) == len(y) and all(abs(float(u) - float(v)) <= _NORM_ATOL
                                        for u, v in zip(x, y))
               for x, y in zip(a, b))


def _open_clip_name(name) -> bool:
    """Whether ``name`` is an open_clip model name (not a timm name)."""
    if not isinstance(name, str):
        return False
    import open_clip
    return open_clip.get_model_config(name) is not None


def _is_clip_part(node: dict) -> bool:
    model_cfg = node.get('model_cfg')
    return _open_clip_name(node.get('model_name')) or (
        isinstance(model_cfg, dict)
        and ('vision_cfg' in model_cfg or 'text_cfg' in model_cfg))


def clip_parts(model_cfg: dict, prefix: str = '') -> Iterator[Tuple[str, dict]]:
    """Every open_clip CLIP named in a (part of a) model config.

    A part is a dict whose ``model_name`` is an open_clip model name or whose
    ``model_cfg`` is an open_clip model-config dict; timm towers (DINO's
    ``vfm``, LSeg's ``TimmViT``) and SAM are not CLIPs.

    Args:
        model_cfg (dict): A model config or a part of one.
        prefix (str): The dotted path of ``model_cfg`` in the model config.

    Yields:
        tuple[str, dict]: The dotted path of the part (``'backbone'``,
        ``'decode_head.clip'``) and its config.
    """
    if not isinstance(model_cfg, dict):
        return
    for key, value in model_cfg.items():
        if not isinstance(value, dict):
            continue
        path = f'{prefix}{key}'
        if _is_clip_part(value):
            yield path, value
        yield from clip_parts(value, prefix=f'{path}.')


def _weights(pretrained) -> Optional[Tuple[str, str]]:
    """(kind, identity) of a ``pretrained`` value; None when unknown."""
    if not isinstance(pretrained, str) or not pretrained:
        return None  # random or from a checkpoint of the whole model
    path = osp.realpath(osp.expanduser(pretrained))
    if osp.isfile(path):
        return 'file', path
    return 'tag', pretrained


def _same_weights(a, b) -> bool:
    wa, wb = _weights(a), _weights(b)
    if wa is None or wb is None or wa == wb:
        return True
    if wa[0] == wb[0] == 'file':
        if osp.getsize(wa[1]) != osp.getsize(wb[1]):
            return False
        from .open_clip_weights import file_sha256  # memoized
        return file_sha256(wa[1]) == file_sha256(wb[1])
    # a tag against a file: the file may hold the tag's weights (the offline
    # instructions pass the tag's file); not refused
    return wa[0] != wb[0]


def _describe(path: str, part: dict) -> str:
    name = part.get('model_name')
    text = f'model.{path} (model_name={name!r}'
    if name is None and part.get('model_cfg') is not None:
        text += ', model_cfg=<dict>'
    text += f", pretrained={part.get('pretrained')!r}"
    if part.get('quick_gelu') is not None:
        text += f", quick_gelu={part.get('quick_gelu')!r}"
    return text + ')'


def _differences(a: dict, b: dict) -> List[str]:
    found = []
    if a.get('model_name') is not None and b.get('model_name') is not None \
            and a['model_name'] != b['model_name']:
        found.append('model_name')
    if a.get('model_cfg') is not None and b.get('model_cfg') is not None and \
            json.dumps(a['model_cfg'], sort_keys=True, default=str) != \
            json.dumps(b['model_cfg'], sort_keys=True, default=str):
        found.append('model_cfg')
    if not _same_weights(a.get('pretrained'), b.get('pretrained')):
        found.append('pretrained')
    if a.get('quick_gelu') is not None and b.get('quick_gelu') is not None \
            and bool(a['quick_gelu']) != bool(b['quick_gelu']):
        found.append('quick_gelu')
    return found


def check_same_clip(parts: Sequence[Tuple[str, dict]]) -> None:
    """Raises when the CLIP parts of a model are not one CLIP.

    Compared pairwise with the first part: ``model_name`` and ``model_cfg``
    where both give one, ``pretrained`` where both give weights (tags by
    name, files by content; ``None`` means random or loaded from the
    model's checkpoint and is not compared), ``quick_gelu`` where both set it.

    Args:
        parts (Sequence[tuple[str, dict]]): The output of :func:`clip_parts`.

    Raises:
        ValueError: Naming both parts, what differs and the fix.
    """
    parts = list(parts)
    if len(parts) < 2:
        return
    first_path, first = parts[0]
    for path, part in parts[1:]:
        differ = _differences(first, part)
        if differ:
            fields = ' / '.join(differ)
            names = ', '.join(f'model.{p}' for p, _ in parts)
            raise ValueError(
                f'{_describe(first_path, first)} and {_describe(path, part)} are not the '
                f'same CLIP ({fields} differ). Image and text embeddings of different CLIPs '
                'are not comparable: the model would build and score the image features of '
                'one CLIP against the text embeddings of another. Give every CLIP part of '
                f'the model the same model_name / pretrained ({names}); offline, the same '
                'local file in each, e.g. --cfg-options '
                + ' '.join(f'model.{p}.pretrained=FILE' for p, _ in parts) + '.')


def _tag_normalisation(part: dict) -> Optional[Tuple[list, list]]:
    """(mean, std) x 255 of the open_clip tag of ``part``, or None."""
    name, tag = part.get('model_name'), part.get('pretrained')
    if not _open_clip_name(name) or _weights(tag) is None or _weights(tag)[0] != 'tag':
        return None
    import open_clip
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    if cfg.get('mean') is None or cfg.get('std') is None:
        return None
    return ([255.0 * v for v in cfg['mean']], [255.0 * v for v in cfg['std']])


def check_clip_normalisation(backbone: dict, data_preprocessor: Optional[dict]) -> None:
    """Raises when the input normalisation is not the image CLIP's.

    Checked where the backbone is an open_clip CLIP with a pretrained *tag*
    whose open_clip record gives its mean / std (a local file or random
    weights say nothing about their normalisation).

    Args:
        backbone (dict): ``model.backbone``.
        data_preprocessor (dict, optional): ``model.data_preprocessor``
            (``mean`` / ``std`` in RGB order on the 0-255 scale).

    Raises:
        ValueError: Naming the constants of both and the fix.
    """
    if not isinstance(backbone, dict) or not isinstance(data_preprocessor, dict):
        return
    mean, std = data_preprocessor.get('mean'), data_preprocessor.get('std')
    if mean is None or std is None or not _is_clip_part(backbone):
        return
    expected = _tag_normalisation(backbone)
    if expected is None:
        return
    want_mean, want_std = expected
    if _same_normalisation((mean, std), expected):
        return

    def fmt(values):
        return '[' + ', '.join(f'{float(v):.4f}'.rstrip('0').rstrip('.') for v in values) + ']'
    raise ValueError(
        f'model.data_preprocessor normalises with mean={fmt(mean)}, std={fmt(std)}, but the '
        f"image CLIP model.backbone ({backbone.get('model_name')!r} / "
        f"{backbone.get('pretrained')!r}) was trained with mean={fmt(want_mean)}, "
        f'std={fmt(want_std)} (open_clip\'s record of the tag, x 255, RGB). Its features '
        'would be computed on wrongly normalised images. Set '
        f'model.data_preprocessor.mean={fmt(want_mean)} and std={fmt(want_std)} in the config '
        'that swaps the CLIP.')


#: Parts that turn the network input back into pixels, with the keys of the
#: normalisation they assume (it must be the data preprocessor's):
#: ProxyCLIP / CorrCLIP / Trident backbones (to re-normalise for their DINO
#: or SAM) and the mask-vote refinement (to recover pixels for its masks).
_UNNORMALISING = (('backbone', ('input_mean', 'input_std')),
                  ('decode_head.mask_refinement', ('mean', 'std')))


def check_input_unnormalisation(model_parts: dict,
                                data_preprocessor: Optional[dict]) -> None:
    """Raises when a part undoes another normalisation than the input's.

    ProxyCLIP's, CorrCLIP's and Trident's backbones turn the CLIP-normalised
    input back into pixels (``input_mean`` / ``input_std``, default OpenAI
    CLIP's) to feed their DINO or SAM, and the mask-vote refinement does the
    same (``mean`` / ``std``) for its mask generator. A config that swaps the
    CLIP and, as :func:`check_clip_normalisation` asks, its
    ``data_preprocessor`` constants (SigLIP: 127.5 / 127.5), but not these,
    feeds them wrongly coloured images without a word.

    Raises:
        ValueError: Naming the part, both normalisations and the fix.
    """
    if not isinstance(data_preprocessor, dict):
        return
    mean, std = data_preprocessor.get('mean'), data_preprocessor.get('std')
    if mean is None or std is None:
        return
    for path, (mean_key, std_key) in _UNNORMALISING:
        part = model_parts
        for key in path.split('.'):
            part = part.get(key) if isinstance(part, dict) else None
        if not isinstance(part, dict):
            continue
        theirs = [part.get(k, registered_default(part, k)) for k in (mean_key, std_key)]
        if any(v is None for v in theirs):
            continue
        if _same_normalisation(theirs, (mean, std)):
            continue
        raise ValueError(
            f'model.{path} turns the input back into pixels with {mean_key}='
            f'{[round(float(v), 4) for v in theirs[0]]}, {std_key}='
            f'{[round(float(v), 4) for v in theirs[1]]}, but model.data_preprocessor '
            f'normalises with mean={[round(float(v), 4) for v in mean]}, std='
            f'{[round(float(v), 4) for v in std]}: the images it passes on would be wrongly '
            f'coloured. Set model.{path}.{mean_key} and .{std_key} to the data '
            'preprocessor\'s mean and std.')


def check_region_classifier_normalisation(model_parts: dict) -> None:
    """Raises when the masked-crop classifier normalises its crops with
    other constants than its CLIP's pretrained tag.

    ``decode_head.region_classifier`` (ZegFormer, OVSeg, SAM + CLIP) turns
    pixel crops into its CLIP's input space with ``clip_mean`` /
    ``clip_std`` (default OpenAI CLIP's), independently of the data
    preprocessor (the mask model may use ImageNet's constants).

    Raises:
        ValueError: Naming both normalisations and the fix.
    """
    head = model_parts.get('decode_head')
    region = head.get('region_classifier') if isinstance(head, dict) else None
    clip = region.get('clip') if isinstance(region, dict) else None
    if not isinstance(clip, dict):
        return
    expected = _tag_normalisation(clip)
    if expected is None:
        return
    theirs = [region.get(k) or registered_default(region, k) for k in ('clip_mean', 'clip_std')]
    if theirs[0] is None and theirs[1] is None:  # the classifier's own default: OpenAI CLIP's
        import open_clip
        theirs = [[255.0 * v for v in open_clip.OPENAI_DATASET_MEAN],
                  [255.0 * v for v in open_clip.OPENAI_DATASET_STD]]
    if any(v is None for v in theirs) or _same_normalisation(theirs, expected):
        return
    raise ValueError(
        f'model.decode_head.region_classifier normalises its crops with clip_mean='
        f'{[round(float(v), 4) for v in theirs[0]]}, clip_std='
        f'{[round(float(v), 4) for v in theirs[1]]}, but its CLIP ({clip.get("model_name")!r} '
        f'/ {clip.get("pretrained")!r}) was trained with mean='
        f'{[round(v, 4) for v in expected[0]]}, std={[round(v, 4) for v in expected[1]]} '
        "(open_clip's record of the tag, x 255). Set model.decode_head.region_classifier."
        'clip_mean and .clip_std to them.')


def check_clip_consistency(model_parts: dict, data_preprocessor: Optional[dict]) -> None:
    """:func:`check_same_clip`, :func:`check_clip_normalisation`,
    :func:`check_input_unnormalisation` and
    :func:`check_region_classifier_normalisation` at once.

    Args:
        model_parts (dict): The segmentor's sub-configs by name
            (``backbone``, ``text_encoder``, ``decode_head``, ``neck``).
        data_preprocessor (dict, optional): ``model.data_preprocessor``.
    """
    check_same_clip(list(clip_parts(model_parts)))
    check_clip_normalisation(model_parts.get('backbone'), data_preprocessor)
    check_input_unnormalisation(model_parts, data_preprocessor)
    check_region_classifier_normalisation(model_parts)


def stale_clip_variables(cfg) -> List[str]:
    """Messages for ``clip_model`` / ``clip_pretrained`` that no CLIP part uses.

    The model bases name their CLIP once, in the variables ``clip_model`` and
    ``clip_pretrained``, and use them in ``model``. mmengine substitutes a
    variable where the base file uses it, when that file is read: a child
    config that sets ``clip_model = 'ViT-L-14'`` (or ``--cfg-options
    clip_model=ViT-L-14``) changes the variable only, and the model is still
    the base's CLIP.

    Args:
        cfg (Config | dict): A whole config.

    Returns:
        list[str]: One message per variable that names a CLIP no part of
        ``cfg.model`` uses (``model_name``; ``pretrained`` where the parts
        give one), saying which fields to set instead.
    """
    parts = list(clip_parts(cfg.get('model') or {}, prefix='model.'))
    messages = []
    for var, field in (('clip_model', 'model_name'), ('clip_pretrained', 'pretrained')):
        value = cfg.get(var)
        known = [p.get(field) for _, p in parts if isinstance(p.get(field), str)]
        if not isinstance(value, str) or not known or value in known:
            continue
        used = ', '.join(sorted(set(repr(v) for v in known)))
        fields = ' '.join(f'{path}.{field}={value}' for path, _ in parts)
        messages.append(
            f'the config sets {var}={value!r}, but no CLIP part of the model uses it (they use '
            f'{used}): a base\'s variable is substituted when the base is read, so setting it in '
            f'a child config or with --cfg-options changes nothing. Set the model fields '
            f'instead: {fields} (and, for another width, the head channels of '
            f'docs/configs.md "Swapping the CLIP").')
    return messages
