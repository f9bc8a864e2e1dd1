"""``key=value`` command-line overrides, parsed as literals (never run)."""
import ast
from typing import Dict, Sequence


def parse_literal(text: str):
    """A Python literal (number, string, tuple, list, dict, bool, None).

    Parsed with :func:`ast.literal_eval`, which evaluates nothing: text that
    is not a literal (``abc``, ``__import__('os').system('...')``) is kept
    as that plain string.

    Args:
        text: The value as typed on the command line.

    Returns:
        The literal's value, or ``text`` itself.
    """
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError,
            RecursionError):
        return text


def parse_key_values(items: Sequence[str],
                     option: str = '--cfg-options') -> Dict[str, object]:
    """``['a.b=1', 'c=(2, 3)']`` -> ``{'a.b': 1, 'c': (2, 3)}``.

    Values go through :func:`parse_literal`.

    Raises:
        ValueError: An item without ``=`` (the message names the option).
    """
    options = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not sep or not key.strip():
            raise ValueError(f'{option}: {item!r} is not key=value (e.g. '
                             f'model.test_cfg.crop_batch_size=8).')
        options[key.strip()] = parse_literal(value)
    return options
