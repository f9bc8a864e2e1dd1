"""The one output-path guard of every tool that writes files.

``tools/test.py --out``/``--show-dir``/``--work-dir``, ``tools/train.py
--work-dir``, ``tools/demo.py --out`` and the report folder of
``vocabulary_report.py`` call :func:`check_output_dir` before anything is
written; tools that write one file (``--json`` of the benchmark and
side-by-side tools, ``run_table.py --out``) call :func:`check_output_file`.
They refuse, with an error naming the path and the fix:

* an output folder equal to or inside a protected folder (a dataset's root,
  image or label folder): predictions written there would replace ground
  truth and the next evaluation would score the predictions against
  themselves;
* a planned output file that is an input file;
* with ``overwrite``, an existing file of the output folder that is a hard
  link of a protected file (writing it would change the input through the
  shared inode);
* a non-empty output folder, unless ``overwrite`` is set;
* for one output file: a folder, a file inside a protected folder, an input
  file, or any existing file unless ``overwrite`` is set.

Files and folders are compared by inode (``st_dev``, ``st_ino``), not by
path: a symbolic link, a ``..`` detour or a hard link reaches the same
inode, while ``os.path.realpath`` sees through symbolic links only.
"""
import os
import os.path as osp
from typing import Dict, Iterable, Optional, Tuple

__all__ = [
    'UnsafeOutputError', 'inode_key', 'check_output_dir', 'check_output_file',
    'check_planned_outputs'
]

Key = Tuple[int, int]


class UnsafeOutputError(ValueError):
    """An output path would replace an input, a dataset file or other files."""


def inode_key(path: str) -> Optional[Key]:
    """``(st_dev, st_ino)`` of ``path`` (links followed), None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _keys(paths: Iterable[str]) -> Dict[Key, str]:
    keys = {}
    for path in paths:
        key = inode_key(path)
        if key is not None:
            keys.setdefault(key, path)
    return keys


def _files_under(folders: Iterable[str]) -> Iterable[str]:
    for folder in folders:
        if osp.isfile(folder):
            yield folder
            continue
        for root, _, names in os.walk(folder):
            for name in names:
                yield osp.join(root, name)


def _check_not_inside(out_dir: str, protected_dirs: Dict[Key, str], flag: str) -> None:
    """Walks from ``out_dir`` up to ``/``; refuses when a step is protected."""
    start = path = osp.abspath(out_dir)
    while True:
        key = inode_key(path)
        if key is not None and key in protected_dirs:
            where = 'is' if path == start else 'lies inside'
            raise UnsafeOutputError(
                f"{flag} '{out_dir}' {where} the protected folder "
                f"'{protected_dirs[key]}' (a dataset or input folder): files written there "
                'could replace ground truth or inputs. Choose an output folder outside it.')
        parent = osp.dirname(path)
        if parent == path:
            return
        path = parent


def check_planned_outputs(paths: Iterable[str], inputs: Iterable[str],
                          flag: str = '--out') -> None:
    """Refuses an output file that is (by inode) one of the input files.

    Args:
        paths: The files that will be written.
        inputs: Files that must never be written.
        flag: The option named in the message.

    Raises:
        UnsafeOutputError: ``Output '…' would overwrite an input …``.
    """
    protected = _keys(inputs)
    if not protected:
        return
    for path in paths:
        key = inode_key(path)
        if key is not None and key in protected:
            raise UnsafeOutputError(
                f"Output '{path}' would overwrite an input "
                f"('{protected[key]}', the same file); choose another {flag}.")


def check_output_dir(out_dir: str,
                     overwrite: bool = False,
                     protected_dirs: Iterable[str] = (),
                     protected_files: Iterable[str] = (),
                     planned: Iterable[str] = (),
                     require_empty: bool = True,
                     flag: str = '--out') -> None:
    """Checks an output folder before a tool writes into it.

    Args:
        out_dir: The output folder (it need not exist yet).
        overwrite: Allow a non-empty folder (``--overwrite``); protected
            files are refused all the same.
        protected_dirs: Folders whose files must never be written (dataset
            roots, image and label folders); outputs may not lie inside them.
        protected_files: Files that must never be written (input images).
        planned: Paths the tool is about to write, checked against
            ``protected_files``.
        require_empty: Refuse a non-empty folder unless ``overwrite``
            (False for work directories, which ``--resume`` reuses).
        flag: The command-line option named in messages.

    Raises:
        UnsafeOutputError: With the path, the reason and the fix.
    """
    protected_dirs = [d for d in protected_dirs if d]
    protected_files = [f for f in protected_files if f]
    _check_not_inside(out_dir, _keys(d for d in protected_dirs if osp.isdir(d)), flag)
    check_planned_outputs(planned, protected_files, flag)
    if not osp.isdir(out_dir):
        if osp.exists(out_dir):
            raise UnsafeOutputError(f"{flag} '{out_dir}' is a file, not a folder.")
        return
    entries = os.listdir(out_dir)
    if not entries:
        return
    if require_empty and not overwrite:
        shown = ', '.join(sorted(entries)[:3]) + (', …' if len(entries) > 3 else '')
        raise UnsafeOutputError(
            f"{flag} '{out_dir}' is not empty ({len(entries)} entries: {shown}); files in it "
            'could be overwritten. Choose an empty or new folder, or pass --overwrite to '
            'write into it anyway.')
    # Writing into a non-empty folder: none of its files may share an inode
    # with a protected file (a hard link would let the write reach the input).
    linked = [p for p in _files_under([out_dir])
              if osp.isfile(p) and os.stat(p).st_nlink > 1]
    if not linked:
        return
    protected = _keys(_files_under(protected_dirs + protected_files))
    for path in linked:
        key = inode_key(path)
        if key in protected:
            raise UnsafeOutputError(
                f"'{path}' in {flag} '{out_dir}' is a hard link of '{protected[key]}' "
                '(an input or dataset file): writing it would change that file. Choose '
                f'another {flag} or remove the link.')


def check_output_file(path: str,
                      overwrite: bool = False,
                      protected_dirs: Iterable[str] = (),
                      protected_files: Iterable[str] = (),
                      flag: str = '--json') -> None:
    """Checks one output file before a tool runs (a JSON or markdown result).

    Called before the measurement, so that a refused path costs nothing.

    Args:
        path: The file the tool will write (its folder need not exist yet).
        overwrite: Allow replacing an existing file (``--overwrite``);
            protected files and folders are refused all the same.
        protected_dirs: Folders the file may not lie in (dataset folders).
        protected_files: Files that must never be written (the config, the
            checkpoint, input images).
        flag: The command-line option named in messages.

    Raises:
        UnsafeOutputError: With the path, the reason and the fix.
    """
    if osp.isdir(path):
        raise UnsafeOutputError(f"{flag} '{path}' is a folder; name a file (e.g. "
                                f"'{osp.join(path, 'result.json')}').")
    protected_dirs = [d for d in protected_dirs if d and osp.isdir(d)]
    _check_not_inside(path, _keys(protected_dirs), flag)
    check_planned_outputs([path], [f for f in protected_files if f], flag)
    if osp.exists(path) and not overwrite:
        raise UnsafeOutputError(
            f"{flag} '{path}' exists and would be replaced; choose a new file name, or pass "
            '--overwrite to replace it.')
