"""What a model-config part leaves out: the defaults of its registered type.

A config dict gives only the arguments it changes; the others are the
defaults of the ``__init__`` of the class its ``type`` names in
``mmseg.registry.MODELS``. Checks that run on the config, before anything is
built (the CLIP-consistency checks, the download of pretrained CLIP tags),
read those defaults with :func:`registered_default`.
"""
import inspect

__all__ = ['registered_default']


def registered_default(part: dict, key: str):
    """The default of argument ``key`` of the ``__init__`` of ``part``'s type.

    Args:
        part (dict): A model-config part with a ``type`` registered in
            ``mmseg.registry.MODELS`` (e.g. ``model.backbone``).
        key (str): The argument name (``'pretrained'``, ``'clip_mean'``...).

    Returns:
        The default value, or None when the type is not registered (or
        cannot be looked up) or its ``__init__`` has no such argument or
        gives it no default.

    Example::

        registered_default(dict(type='OpenCLIPViT'), 'model_name')  # 'ViT-B-16'
        registered_default(dict(type='OpenCLIPViT', model_name='RN50'),
                           'model_name')  # 'ViT-B-16': the config's value is not read
    """
    from mmseg.registry import MODELS
    try:
        cls = MODELS.get(part.get('type'))
        parameter = inspect.signature(cls.__init__).parameters.get(key) if cls else None
    except Exception:  # noqa: BLE001 - an unregistered type: nothing to compare
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default
