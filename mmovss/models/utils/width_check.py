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
forward: :func:`output_widths` of the backbone (or neck) and the text
encoder's ``embed_dim``. A tower that states
none is skipped, never guessed.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

__all__ = [
    'TEXT', 'DeclaredWidth', 'output_widths', 'mmseg_input_widths', 'head_declared_widths',
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
        source (int | str): Index of the feature the head reads (into the
            backbone's, or neck's, outputs), or :data:`TEXT` for the class
            embeddings.
        width (int): The channels the head expects there.
    """
    key: str
    position: Optional[int]
    source: Union[int, str]
    width: int


def output_widths(module) -> Optional[tuple]:
    """Channels of each output of a built backbone or neck, without a forward.

    The module's own ``out_widths`` (mmovss towers), else mmseg's ResNet
    family and Swin from their stage settings; None where unknown.
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


def mmseg_input_widths(head) -> List[DeclaredWidth]:
    """The widths mmseg's contract of a ``BaseDecodeHead`` declares.

    ``in_channels`` are the channels of the inputs ``in_index`` selects: one
    input (``input_transform=None``), or one entry per input
    (``'multiple_select'``). ``'resize_concat'`` keeps only their sum and is
    not declared.
    """
    if head.input_transform is None and isinstance(head.in_index, int):
        return [DeclaredWidth('in_channels', None, head.in_index, head.in_channels)]
    if head.input_transform == 'multiple_select':
        return [DeclaredWidth('in_channels', i, index, width) for i, (index, width)
                in enumerate(zip(head.in_index, head.in_channels))]
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


def _value(entries: List[DeclaredWidth]):
    """The config value the entries of one key spell (a list or a number)."""
    if entries[0].position is None:
        return entries[0].width
    by_position = {e.position: e.width for e in entries}
    return [by_position[p] for p in sorted(by_position)]


def _fixed(entries: List[DeclaredWidth], actual: Dict[DeclaredWidth, int]):
    """The value of one key with every entry set to the width its source has."""
    if entries[0].position is None:
        wanted = sorted({actual.get(e, e.width) for e in entries})
        return wanted[0] if len(wanted) == 1 else wanted
    by_position = {e.position: e.width for e in entries}
    for e in entries:
        if e in actual:
            by_position[e.position] = actual[e]
    return [by_position[p] for p in sorted(by_position)]


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
    actual: Dict[DeclaredWidth, int] = {}
    mismatched: Dict[tuple, List[int]] = {}  # (has, expected) -> output indices
    text_problems, missing = [], []
    for entry in declared:
        if entry.source == TEXT:
            if text_width is not None and text_width != entry.width:
                actual[entry] = text_width
                text_problems.append(f'{text_source} embeds class names in {text_width} '
                                     f'dimensions, the head expects {entry.width}')
        elif feature_widths is not None:
            n = len(feature_widths)
            if not -n <= entry.source < n:
                missing.append(entry.source)
            elif feature_widths[entry.source] != entry.width:
                actual[entry] = feature_widths[entry.source]
                mismatched.setdefault((actual[entry], entry.width), []).append(entry.source % n)
    feature_problems = [
        f"output{'s' if len(i) > 1 else ''} {', '.join(map(str, i))} "
        f"ha{'ve' if len(i) > 1 else 's'} {has}, the head expects {expected}"
        for (has, expected), i in mismatched.items()]
    if not (feature_problems or text_problems or missing):
        return None
    problems = text_problems
    if feature_problems or missing:
        problems = [f'{feature_source} outputs {list(feature_widths)} channels: ' + '; '.join(
            feature_problems + [f'the head reads output {i}, which does not exist'
                                for i in missing])] + problems
    keys = [k for k, entries in by_key.items() if any(e in actual for e in entries)]
    now = ', '.join(f'{head}.{k}={_value(by_key[k])}' for k in keys) or f'{head}.in_index'
    fixes = [f'{head}.{k}={_fixed(by_key[k], actual)}' for k in keys]
    if missing:
        fixes.append(f'{head}.in_index to outputs that exist')
    return (
        f'{now} does not fit the towers: ' + '; '.join(problems) + '. The head widths follow '
        'the CLIP (docs/configs.md, "Swapping the CLIP"): set ' + ' and '.join(fixes)
        + ' (in the config that swaps the CLIP, or with --cfg-options).')
