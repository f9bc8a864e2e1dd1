"""Every ``__init__.py`` of the package says what it exports.

For each package under ``mmovss/``: ``__all__`` has no duplicates and names
only attributes that exist; it lists every public name that the
``__init__.py`` imports from its own modules (other than submodules); and it
lists every class or function that a module of that folder registers into a
registry (``@X.register_module()``), so a reader of the folder's
``__init__.py`` sees everything a config can name. Only a package that
exports nothing (a namespace of modules) may go without ``__all__``.
"""
import ast
import importlib
import types
from pathlib import Path

import pytest

import mmovss

PACKAGE_DIR = Path(mmovss.__file__).parent
INITS = sorted(PACKAGE_DIR.rglob('__init__.py'))


def module_name(init: Path) -> str:
    parts = init.parent.relative_to(PACKAGE_DIR.parent).parts
    return '.'.join(parts)


def relative_imports(tree: ast.Module):
    """Names bound by ``from .x import a`` at the top of a module."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            for alias in node.names:
                yield alias.asname or alias.name


def registered_names(folder: Path):
    """``(file, name)`` of every definition decorated ``*.register_module``."""
    for path in sorted(folder.glob('*.py')):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                continue
            for deco in node.decorator_list:
                func = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(func, ast.Attribute) and \
                        func.attr == 'register_module':
                    yield path.name, node.name


@pytest.mark.parametrize('init', INITS,
                         ids=[module_name(i) for i in INITS])
def test_all_lists_the_imports_and_registered_modules(init):
    name = module_name(init)
    module = importlib.import_module(name)
    exported = getattr(module, '__all__', None)
    if exported is None:  # allowed only for a package that exports nothing
        exported = []
    assert len(exported) == len(set(exported)), \
        f'{name}.__all__ has duplicates.'
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f'{name}.__all__ names missing attributes {missing}.'
    tree = ast.parse(init.read_text())
    imported = [
        n for n in relative_imports(tree) if not n.startswith('_')
        and not isinstance(getattr(module, n, None), types.ModuleType)
    ]
    unlisted = sorted(set(imported) - set(exported))
    assert not unlisted, \
        f'{name}/__init__.py imports {unlisted} but __all__ does not list them.'
    registered = [(f, n) for f, n in registered_names(init.parent)
                  if not n.startswith('_')]
    unexported = sorted(f'{f}: {n}' for f, n in registered
                        if n not in exported)
    assert not unexported, \
        f'{name}.__all__ lacks the modules registered in its folder: ' \
        f'{unexported}.'


def test_the_check_sees_registered_modules():
    """The AST scan finds what the registries hold (so the test can fail)."""
    from mmseg.registry import HOOKS, MODELS
    heads = dict(registered_names(PACKAGE_DIR / 'models' / 'decode_heads'))
    assert heads['fcclip_head.py'] == 'FCCLIPHead'
    assert MODELS.get('FCCLIPHead') is not None
    hooks = [n for _, n in registered_names(PACKAGE_DIR / 'engine' / 'hooks')]
    assert hooks == ['DatasetVocabularyHook']
    assert HOOKS.get('DatasetVocabularyHook') is not None
