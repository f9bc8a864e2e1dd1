"""Detects ``mmovss`` imported as a namespace package instead of the installed one.

With setuptools' default editable install (``pip install -e .``) the package is
found by a meta-path finder that Python consults *after* the ordinary path
finder. A folder named ``mmovss`` in the current directory (typically the
clone itself, when standing in the folder that holds it) then wins as a PEP 420
namespace package: ``import mmovss`` runs no code, so :mod:`mmovss.compat`
never patches mmseg, and the first ``mmseg`` import fails with
``ModuleNotFoundError: No module named 'mmcv._ext'`` (and configs'
``custom_imports=['mmovss']`` register nothing). The README's install command
(``--config-settings editable_mode=compat``) puts the repository on
``sys.path`` instead, where the real package beats any namespace folder.
:func:`check_package_import` turns the remaining cases (older installs) into a
message that says what happened and how to fix it; importing this module runs
it (``mmovss.apis`` does so first).
"""
import os.path as osp
import sys

__all__ = ['NamespaceImportError', 'check_package_import']


class NamespaceImportError(ImportError):
    """``mmovss`` is a namespace package (a folder), not the installed package."""


def check_package_import(module=None) -> None:
    """Raises :class:`NamespaceImportError` if ``mmovss`` is a namespace package.

    Args:
        module (module, optional): The ``mmovss`` module to check; defaults to
            ``sys.modules['mmovss']``.
    """
    module = module if module is not None else sys.modules.get('mmovss')
    if module is None or getattr(module, '__file__', None):
        return
    folders = [str(p) for p in getattr(module, '__path__', [])]
    real = osp.dirname(osp.abspath(__file__))
    raise NamespaceImportError(
        f"'mmovss' was imported as a namespace package from {folders} (a folder "
        f"named mmovss in the current directory or on sys.path, probably your clone "
        f"of the repository) instead of the installed package at {real}, so "
        f"mmovss.compat did not run. Run Python from another folder (e.g. inside the "
        f"clone), or reinstall with `python -m pip install -e \".[tests]\" "
        f"--config-settings editable_mode=compat` (the README's command), which lets "
        f"the installed package win wherever you stand.")


check_package_import()
