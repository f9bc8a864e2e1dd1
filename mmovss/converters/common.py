"""Pieces every checkpoint converter shares: the error and its key summary."""
from typing import Dict, Iterable, Mapping

import torch

__all__ = ['ConversionError', 'unwrap_state_dict', 'check_accounted']


class ConversionError(KeyError):
    """A checkpoint is not (all) of the format a converter reads."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, torch.Tensor]:
    """The state dict inside a loaded checkpoint (``model`` / ``state_dict`` or itself)."""
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get(key), Mapping):
            return dict(checkpoint[key])
    if not isinstance(checkpoint, Mapping):
        raise ConversionError(f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    return dict(checkpoint)


def check_accounted(fmt: str, unknown: Iterable[str], missing: Iterable[str] = ()) -> None:
    """Refuses a conversion with unknown source keys or missing expected keys.

    Args:
        fmt (str): The format's name, for the message (e.g. ``'CAT-Seg (official)'``).
        unknown (Iterable[str]): Source keys with no place and no stated reason to drop.
        missing (Iterable[str]): Keys the format must have that the file lacks.

    Raises:
        ConversionError: With the first keys of each list and their counts.
    """
    unknown, missing = sorted(unknown), sorted(missing)
    if not unknown and not missing:
        return
    parts = []
    if unknown:
        parts.append(f'{len(unknown)} unknown key(s), e.g. {unknown[:5]}')
    if missing:
        parts.append(f'{len(missing)} missing key(s), e.g. {missing[:5]}')
    raise ConversionError(
        f'Not a complete {fmt} checkpoint: {"; ".join(parts)}. Pass the file as released '
        f'by the authors (an interrupted download is truncated: delete it and download '
        f'again), or the converter of its own format.')
