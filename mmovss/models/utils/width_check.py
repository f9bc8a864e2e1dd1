"""Build-time check that a decode head's widths fit its towers.

A config that swaps the CLIP by inheritance (``model.backbone.model_name=
'ViT-L-14'``, a ConvNeXt CLIP) must also change the head widths that follow
the tower: ``decode_head.in_channels`` (the channels of the backbone outputs
the head reads) and ``embed_dim`` (the width of the class embeddings). A
forgotten one used to fail only at the first forward, as a bare matmul or
convolution shape error inside torch, or at checkpoint loading.

:func:`check_head_widths` compares, once the segmentor is built, the widths a
head declares (:meth:`OpenVocabDecodeHead.declared_widths
<mmovss.models.decode_heads.OpenVocabDecodeHead.declared_widths>`) with the
widths its towers state without a forward: :func:`output_widths` of the
backbone (or neck) and the text encoder's ``embed_dim``. A tower that states
none is skipped, never guessed.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Union

__all__ = ['TEXT', 'DeclaredWidth', 'output_widths', 'mmseg_input_widths', 'check_head_widths']

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


def check_head_widths(declared: Sequence[DeclaredWidth],
                      feature_widths: Optional[Sequence[int]],
                      text_width: Optional[int],
                      feature_source: str = 'model.backbone',
                      text_source: str = 'model.text_encoder',
                      head: str = 'model.decode_head') -> None:
    """Raises when a head's declared widths differ from its towers'.

    Args:
        declared (Sequence[DeclaredWidth]): The head's declared widths.
        feature_widths (Sequence[int], optional): Channels of each feature
            the head receives; None: unknown (not checked).
        text_width (int, optional): Width of the class embeddings; None:
            unknown (not checked).
        feature_source (str): What gives the features, for the message
            (e.g. ``"model.backbone (OpenCLIPViT, model_name='ViT-L-14')"``).
        text_source (str): What gives the class embeddings, likewise.
        head (str): The head's config path.

    Raises:
        ValueError: Naming each key, its value, the widths of the towers
            and the value that fits.
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
        return
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
    raise ValueError(
        f'{now} does not fit the towers: ' + '; '.join(problems) + '. The head widths follow '
        'the CLIP (docs/configs.md, "Swapping the CLIP"): set ' + ' and '.join(fixes)
        + ' (in the config that swaps the CLIP, or with --cfg-options).')
