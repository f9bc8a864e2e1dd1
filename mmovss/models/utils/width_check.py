"""Build-time check that the widths of the decode and auxiliary heads fit the towers.

A config that swaps the CLIP by inheritance (``model.backbone.model_name=
'ViT-L-14'``, a ConvNeXt CLIP) must also change the head widths that follow
the tower: ``decode_head.in_channels`` (the channels of the backbone outputs
the head reads) and ``embed_dim`` (the width of the class embeddings). A
forgotten one used to fail only at the first forward, as a bare matmul or
convolution shape error inside torch, or at checkpoint loading.

:func:`check_head_widths` compares, once the segmentor is built, the widths
its heads declare (:meth:`OpenVocabDecodeHead.declared_widths
<mmovss.models.decode_heads.OpenVocabDecodeHead.declared_widths>`; mmseg's
``in_channels`` / ``in_index`` for the auxiliary heads,
:func:`head_declared_widths`) with the widths its towers state without a
forward: :func:`output_widths` of the backbone, or
:func:`neck_output_widths` of the neck, and the text encoder's
``embed_dim``. A tower or neck that states none is skipped, never guessed.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = [
    'TEXT', 'DeclaredWidth', 'output_widths', 'neck_output_widths', 'mmseg_input_widths',
    'head_declared_widths',
    'check_head_widths', 'head_width_problem'
]

#: :attr:`DeclaredWidth.source` of the class embeddings (the text width).
TEXT = 'text'


class DeclaredWidth(NamedTuple):
    """A width a decode head expects, and the config key that sets it.

    Attributes:
        key (str): The head's config key, e.g. ``'in_channels'``.
        position (int, optional): The entry of a list-valued key; None where
            the key is one number.
        source (int | tuple | str): Index of the feature the head reads
            (into the backbone's, or neck's, outputs); a tuple of indices for
            the concatenation of those features (mmseg's
            ``input_transform='resize_concat'``); or :data:`TEXT` for the
            class embeddings.
        width (int): The channels the head expects there (for a
            concatenation, their sum).
    """
    key: str
    position: Optional[int]
    source: Union[int, Tuple[int, ...], str]
    width: int


def output_widths(module) -> Optional[tuple]:
    """Channels of each output of a built backbone, without a forward.

    The module's own ``out_widths`` (mmovss towers), else mmseg's ResNet
    family and Swin from their stage settings; None where unknown (a neck's:
    :func:`neck_output_widths`).
    """
    widths = getattr(module, 'out_widths', None)
    if widths is not None:
        return tuple(widths)
    from mmseg.models.backbones import ResNet, SwinTransformer
    if isinstance(module, ResNet):
        return tuple(module.block.expansion * module.base_channels * 2**i
                     for i in module.out_indices)
    if isinstance(module, SwinTransformer):
        return tuple(module.num_features[i] for i in module.out_indices)
    return None


def neck_output_widths(neck, in_widths: Optional[Sequence[int]]) -> Optional[tuple]:
    """Channels of each output of a built neck, without a forward.

    The neck's own ``out_widths(in_widths)`` (mmovss necks), given the
    widths of the backbone outputs it is fed (None: unknown); None where the
    neck states none, or cannot without the widths it is fed.
    """
    stated = getattr(neck, 'out_widths', None)
    if stated is None:
        return None
    widths = stated(None if in_widths is None else tuple(in_widths))
    return None if widths is None else tuple(widths)


def mmseg_input_widths(head) -> List[DeclaredWidth]:
    """The widths mmseg's contract of a ``BaseDecodeHead`` declares.

    ``in_channels`` are the channels of the inputs ``in_index`` selects: one
    input (``input_transform=None``), one entry per input
    (``'multiple_select'``), or, for their concatenation
    (``'resize_concat'``), a list the head keeps only the sum of: the sum
    is declared, its source the tuple of the inputs.
    """
    if head.input_transform is None and isinstance(head.in_index, int):
        return [DeclaredWidth('in_channels', None, head.in_index, head.in_channels)]
    if head.input_transform == 'multiple_select':
        return [DeclaredWidth('in_channels', i, index, width) for i, (index, width)
                in enumerate(zip(head.in_index, head.in_channels))]
    if head.input_transform == 'resize_concat':
        return [DeclaredWidth('in_channels', None, tuple(head.in_index), head.in_channels)]
    return []


def head_declared_widths(head) -> List[DeclaredWidth]:
    """The widths a built decode or auxiliary head expects of its inputs.

    Its own ``declared_widths()`` (the mmovss heads,
    :meth:`~mmovss.models.decode_heads.OpenVocabDecodeHead.declared_widths`),
    else mmseg's contract for a ``BaseDecodeHead`` (an auxiliary
    ``FCNHead``: :func:`mmseg_input_widths`); none for other modules.
    """
    own = getattr(head, 'declared_widths', None)
    if own is not None:
        return list(own())
    from mmseg.models.decode_heads.decode_head import BaseDecodeHead
    return mmseg_input_widths(head) if isinstance(head, BaseDecodeHead) else []


def _concatenated(entry: DeclaredWidth) -> bool:
    return isinstance(entry.source, tuple)


def _value(head: str, key: str, entries: List[DeclaredWidth]) -> str:
    """``head.key=value`` as the entries of one key spell it (a list or a
    number; for a concatenation, only its sum is known)."""
    if _concatenated(entries[0]):
        return f"{head}.{key} summing to {entries[0].width} (input_transform='resize_concat')"
    if entries[0].position is None:
        return f'{head}.{key}={entries[0].width}'
    by_position = {e.position: e.width for e in entries}
    return f'{head}.{key}={[by_position[p] for p in sorted(by_position)]}'


def _fix(head: str, key: str, entries: List[DeclaredWidth], fits: dict) -> str:
    """What to set for one key: every entry at the width its source has (for
    a concatenation, the list of their widths), or, where one number (or
    list entry) is read by inputs of different widths, an ``in_index`` whose
    inputs have one width."""
    wanted: Dict[Optional[int], list] = {}
    for entry in entries:
        width = fits.get(entry, entry.width)
        if width not in wanted.setdefault(entry.position, []):
            wanted[entry.position].append(width)
    for position, widths in wanted.items():
        if len(widths) > 1:
            name = key if position is None else f'{key}[{position}]'
            return _one_width_fix(head, name, [e for e in entries if e.position == position],
                                  fits)
    if None in wanted:
        return f'{head}.{key}={wanted[None][0]}'
    return f'{head}.{key}={[wanted[p][0] for p in sorted(wanted)]}'


def _one_width_fix(head: str, name: str, entries: List[DeclaredWidth], fits: dict) -> str:
    """The fix where the one width ``name`` is read by inputs of different
    widths: no value of it fits, their ``in_index`` must change."""
    outputs = [(e.source, fits.get(e, e.width)) for e in entries if e.source != TEXT]
    text = [fits.get(e, e.width) for e in entries if e.source == TEXT]
    if text:
        readers = ', '.join(f'output {source}, which has {width}' for source, width in outputs)
        return (f'{head}.in_index so that {head}.{name} reads an output of the '
                f'class-embedding width, {text[0]}, instead of {readers}')
    return (f'{head}.in_index to outputs of one width ({head}.{name} is one number for '
            f'outputs {", ".join(str(s) for s, _ in outputs)}, which have '
            f'{", ".join(str(w) for _, w in outputs)}) and {head}.{name} to it')


def check_head_widths(heads: Dict[str, Sequence[DeclaredWidth]],
                      feature_widths: Optional[Sequence[int]],
                      text_width: Optional[int],
                      feature_source: str = 'model.backbone',
                      text_source: str = 'model.text_encoder') -> None:
    """Raises when the declared widths of heads differ from their towers'.

    Args:
        heads (dict): Each head's config path (``'model.decode_head'``,
            ``'model.auxiliary_head[1]'``) and its declared widths
            (:func:`head_declared_widths`).
        feature_widths (Sequence[int], optional): Channels of each feature
            the heads receive; None: unknown (not checked).
        text_width (int, optional): Width of the class embeddings; None:
            unknown (not checked).
        feature_source (str): What gives the features, for the message
            (e.g. ``"model.backbone (OpenCLIPViT, model_name='ViT-L-14')"``).
        text_source (str): What gives the class embeddings, likewise.

    Raises:
        ValueError: One for all heads, naming each key, its value, the
            widths of the towers and the value that fits.
    """
    problems = [head_width_problem(declared, feature_widths, text_width, feature_source,
                                   text_source, head) for head, declared in heads.items()]
    problems = [p for p in problems if p is not None]
    if problems:
        raise ValueError(' '.join(problems))


def head_width_problem(declared: Sequence[DeclaredWidth],
                       feature_widths: Optional[Sequence[int]],
                       text_width: Optional[int],
                       feature_source: str,
                       text_source: str,
                       head: str) -> Optional[str]:
    """What is wrong with one head's declared widths, or None.

    Args:
        declared (Sequence[DeclaredWidth]): The head's declared widths.
        feature_widths, text_width, feature_source, text_source: As in
            :func:`check_head_widths`.
        head (str): The head's config path.

    Returns:
        str, optional: The message, naming each key, its value, the widths
        of the towers and the value that fits; None where all fit.
    """
    by_key: Dict[str, List[DeclaredWidth]] = {}
    for entry in declared:
        by_key.setdefault(entry.key, []).append(entry)
    fits: Dict[DeclaredWidth, Union[int, List[int]]] = {}  # what fits a mismatched entry
    mismatched: Dict[tuple, List[int]] = {}  # (has, expected, concatenated) -> output indices
    text_problems, missing = [], []
    for entry in declared:
        if entry.source == TEXT:
            if text_width is not None and text_width != entry.width:
                fits[entry] = text_width
                text_problems.append(f'{text_source} embeds class names in {text_width} '
                                     f'dimensions, the head expects {entry.width}')
        elif feature_widths is not None:
            n = len(feature_widths)
            sources = entry.source if _concatenated(entry) else (entry.source, )
            missing += [i for i in sources if not -n <= i < n]
            widths = [feature_widths[i] for i in sources if -n <= i < n]
            if len(widths) == len(sources) and sum(widths) != entry.width:
                fits[entry] = widths if _concatenated(entry) else widths[0]
                mismatched.setdefault((sum(widths), entry.width, _concatenated(entry)),
                                      []).extend(i % n for i in sources)
    feature_problems = [
        f"output{'s' if len(i) > 1 else ''} {', '.join(map(str, i))} "
        + ('concatenated ' if concatenated else '')
        + f"ha{'ve' if len(i) > 1 else 's'} {has}, the head expects {expected}"
        for (has, expected, concatenated), i in mismatched.items()]
    if not (feature_problems or text_problems or missing):
        return None
    problems = text_problems
    if feature_problems or missing:
        problems = [f'{feature_source} outputs {list(feature_widths)} channels: ' + '; '.join(
            feature_problems + [f'the head reads output {i}, which does not exist'
                                for i in missing])] + problems
    keys = [k for k, entries in by_key.items() if any(e in fits for e in entries)]
    now = ', '.join(_value(head, k, by_key[k]) for k in keys) or f'{head}.in_index'
    fixes = [_fix(head, k, by_key[k], fits) for k in keys]
    if missing:
        fixes.append(f'{head}.in_index to outputs that exist')
    return (
        f'{now} does not fit the towers: ' + '; '.join(problems) + '. The head widths follow '
        'the CLIP (docs/configs.md, "Swapping the CLIP"): set ' + ' and '.join(fixes)
        + ' (in the config that swaps the CLIP, or with --cfg-options).')
