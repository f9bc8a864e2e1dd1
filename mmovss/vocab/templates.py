"""Prompt templates for embedding class names with CLIP's text tower.

Named sets (Radford et al., ICML 2021, Sec. 3.1.4 prompt ensembling):

* ``'imagenet'``: the 80 ImageNet templates of CLIP,
* ``'vild'``: the 14 templates of ViLD (Gu et al., ICLR 2022),
* ``'single'``: ``'a photo of a {}.'``.

The first two are taken from mmseg's ``get_predefined_templates`` so that the
same strings are used as by mmseg's SAN text encoder.
"""
from typing import Sequence, Tuple, Union

__all__ = ['get_templates', 'TEMPLATE_SETS']

TEMPLATE_SETS = ('imagenet', 'vild', 'single')

_SINGLE = ('a photo of a {}.', )


def _check_template(template, index: int) -> str:
    if not isinstance(template, str):
        raise TypeError(f'Prompt template {index} is a '
                        f'{type(template).__name__}, expected a string.')
    if template.count('{}') != 1 or template.replace('{}', '').count('{') \
            or template.replace('{}', '').count('}'):
        raise ValueError(
            f'Prompt template {index} ({template!r}) must contain exactly one '
            f"'{{}}' placeholder for the class name and no other brace, e.g. "
            f"'a photo of a {{}}.'")
    return template


def get_templates(templates: Union[str, Sequence[str]]) -> Tuple[str, ...]:
    """Resolves a template set name or a list of templates.

    Args:
        templates (str | Sequence[str]): One of :data:`TEMPLATE_SETS`, or
            strings that each contain one ``{}`` placeholder.

    Returns:
        tuple[str]: The templates.
    """
    if isinstance(templates, str):
        if templates == 'single':
            return _SINGLE
        if templates in ('imagenet', 'vild'):
            from mmseg.utils import get_predefined_templates
            return tuple(get_predefined_templates(templates))
        raise ValueError(
            f'Unknown prompt template set {templates!r}; use one of '
            f'{TEMPLATE_SETS} or a list of strings with a {{}} placeholder.')
    templates = tuple(templates)
    if not templates:
        raise ValueError('The list of prompt templates is empty.')
    if len(set(templates)) != len(templates):
        raise ValueError('The list of prompt templates has duplicates; each '
                         'template would count twice in the ensemble.')
    return tuple(_check_template(t, i) for i, t in enumerate(templates))
