"""The vocabulary of an open-vocabulary segmentor: classes named in text.

A vocabulary is an ordered list of classes; each class has one or more names
(synonyms), the first being its display name. Class ``i`` of a vocabulary is
label ``i`` of the dataset it describes. The text encoder embeds every name;
class scores reduce over a class's synonyms (see
:meth:`mmovss.models.text_encoders.ClassEmbeddings.reduce`).

Sources, all normalised to the same form:

* a dataset's ``METAINFO['classes']`` (names with comma-separated synonyms,
  as in the benchmark name lists, e.g. ``'wall, brick wall'``),
* a text file (UTF-8, with or without a byte-order mark), one class per
  line, comma-separated synonyms (blank lines and lines starting with ``#``
  are skipped),
* a Python list whose items are strings (comma-separated synonyms) or
  sequences of names.

Names are stripped, runs of white space become one space, and Unicode is
normalised to NFC (so ``'café'`` typed with a composed ``é`` and with ``e``
plus a combining accent, U+0301, are the same name). Any script may be used;
open_clip's byte-level BPE tokenizer encodes it.
"""
import os
import unicodedata
import warnings
from typing import Iterator, List, Sequence, Tuple, Union

__all__ = ['Vocabulary', 'VocabularyLike', 'ALLOW_SHARED_SYNONYMS', 'ALLOW_DUPLICATE_NAMES',
           'BACKGROUND_WORDS', 'is_background_name']

#: Comment line of a vocabulary file whose shared synonyms are deliberate.
ALLOW_SHARED_SYNONYMS = '# allow-shared-synonyms'
#: Comment line of a published name file whose classes may share their first
#: name (ADE-847's ``'pot, flowerpot'`` and ``'pot'``; ``unique_names=False``).
ALLOW_DUPLICATE_NAMES = '# allow-duplicate-names'

VocabularyLike = Union['Vocabulary', str, os.PathLike, dict, Sequence]

#: Names that mark a class as "everything else" (compared lower-cased).
BACKGROUND_WORDS = ('background', 'bg', 'other', 'others', 'unlabeled', 'unlabelled', 'void')


def is_background_name(name: str) -> bool:
    """Whether a class name marks a background class (``'Background'``,
    ``' other '``; :data:`BACKGROUND_WORDS`). For a ``'a, b'`` synonym list
    pass one name."""
    return name.strip().lower() in BACKGROUND_WORDS


def _split_synonyms(item, where: str) -> Tuple[str, ...]:
    """Turns one class entry into a tuple of stripped, non-empty names."""
    if isinstance(item, str):
        names = item.split(',')
    elif isinstance(item, (list, tuple)):
        names = []
        for name in item:
            if not isinstance(name, str):
                raise TypeError(
                    f'Vocabulary: {where} has a name of type '
                    f'{type(name).__name__} ({name!r}); names must be strings.')
            names.extend(name.split(','))
    else:
        raise TypeError(
            f'Vocabulary: {where} is a {type(item).__name__} ({item!r}); a '
            f'class must be a string (comma-separated synonyms) or a list of '
            f'names.')
    names = tuple(
        unicodedata.normalize('NFC', ' '.join(n.split())) for n in names)
    if not names or any(not n for n in names):
        raise ValueError(
            f'Vocabulary: {where} ({item!r}) has an empty name; every class '
            f'needs at least one name and no synonym may be empty (check for '
            f'a stray or doubled comma).')
    return names


def _check_shared_synonyms(parsed, source: str, mode: str) -> None:
    """Finds a name given to two classes; raises or warns by ``mode``."""
    if mode not in ('error', 'warn', 'ignore'):
        raise ValueError(
            f"duplicate_synonyms must be 'error', 'warn' or 'ignore', got {mode!r}")
    if mode == 'ignore':
        return
    owner = {}
    shared, repeated = [], []
    for i, names in enumerate(parsed):
        for name in names:
            key = name.lower()
            if key in owner and owner[key] != i:
                shared.append((name, owner[key], i))
            elif key in owner:
                repeated.append((name, i))
            owner.setdefault(key, i)
    _report(mode, source, repeated, lambda n, i: f'{n!r} in class {i} ({parsed[i]!r})',
            'a class lists the same name twice (ignoring case, as CLIP\'s tokenizer does)',
            "It counts twice where names are pooled: the softmax over all names of the "
            "training-free heads (so their prob_thd) and synonym_reduction='mean'; remove "
            "the repeat.")
    _report(mode, source, shared,
            lambda n, a, b: f"'{n}' in classes {a} ({parsed[a][0]!r}) and {b} ({parsed[b][0]!r})",
            'the same name is a synonym of two classes',
            'Such a name scores both classes alike; keep it in one class only (in a file '
            f"whose sharing is deliberate, add the line '{ALLOW_SHARED_SYNONYMS}').")


def _report(mode: str, source: str, found: list, describe, problem: str, fix: str) -> None:
    """Raises (``mode='error'``) or warns about ``found`` names, the first
    three described by ``describe(*entry)``."""
    if not found:
        return
    listed = '; '.join(describe(*entry) for entry in found[:3])
    more = f' and {len(found) - 3} more' if len(found) > 3 else ''
    message = f'Vocabulary({source}): {problem}: {listed}{more}. {fix}'
    if mode == 'error':
        raise ValueError(message)
    warnings.warn(message, UserWarning, stacklevel=4)


def _warn_class_separators(path: str, lines: Sequence[str]) -> None:
    """Warns about file lines with ``;``, the class separator of typed text.

    ``--vocabulary "cat; dog"`` is two classes; the line ``cat; dog`` of a
    file is one class of that name, since a file has one class per line.
    """
    found = [(i + 1, line) for i, line in enumerate(lines)
             if ';' in line and not line.startswith('#')]
    if not found:
        return
    listed = ', '.join(f'line {n} {line!r}' for n, line in found[:3])
    more = f' and {len(found) - 3} more' if len(found) > 3 else ''
    warnings.warn(
        f"Vocabulary file {path!r} has ';' in {listed}{more}: ';' separates classes "
        f'only in typed text (--vocabulary, the web page); in a file every line is ONE '
        f"class, so such a line is read as one class named with the ';'. "
        f"Put each class on its own line (synonyms separated by ',').", UserWarning,
        stacklevel=3)


class Vocabulary:
    """An ordered list of classes, each with one or more names.

    Args:
        classes (Sequence): One entry per class: a string with
            comma-separated synonyms (``'sky, clouds'``) or a sequence of
            names (``('sky', 'clouds')``).
        source (str): Where the vocabulary came from, used in messages.

        duplicate_synonyms (str): What a name shared by two classes, or
            listed twice in one class (compared ignoring case), does:
            ``'error'`` raises, ``'warn'`` (the default) issues a
            ``UserWarning``, ``'ignore'`` accepts it. A shared name scores
            both classes alike, so the classifier cannot tell them apart by
            it; a repeated one counts twice where names are pooled (the
            softmax over all names of the training-free heads, hence their
            ``prob_thd``; a ``'mean'`` synonym reduction).
            Dataset METAINFO uses ``'ignore'`` (the published benchmark name
            lists of COCO-Object and PASCAL Context-459 share a few synonyms
            and are kept as published); see also :meth:`from_file`.
        unique_names (bool): Refuse two classes with the same first
            (display) name (default). False only for published dataset lists
            (:meth:`from_metainfo`: ADE-847 has two ``'pot'`` classes).

    Raises:
        ValueError: If the vocabulary is empty, a name is empty, two
            classes share their first (display) name (``unique_names``), or (with
            ``duplicate_synonyms='error'``) two classes share a synonym or a
            class repeats one.

    Warns:
        UserWarning: Two classes share a synonym, or a class repeats one
            (``'warn'``).
    """

    def __init__(self, classes: Sequence, source: str = 'list',
                 duplicate_synonyms: str = 'warn', unique_names: bool = True):
        if isinstance(classes, (str, bytes)) or not isinstance(
                classes, Sequence):
            raise TypeError(
                f'Vocabulary({source}): expected a sequence of classes, got '
                f'{type(classes).__name__}; use Vocabulary.build() for files '
                f'and METAINFO dicts.')
        parsed = tuple(
            _split_synonyms(item, f'class {i} of {source}')
            for i, item in enumerate(classes))
        if not parsed:
            raise ValueError(
                f'Vocabulary({source}) is empty: give at least one class name.')
        seen = {}
        for i, names in enumerate(parsed):
            key = names[0].lower()
            if key in seen and unique_names:
                raise ValueError(
                    f"Vocabulary({source}): classes {seen[key]} and {i} are "
                    f"both named '{names[0]}'; remove the duplicate or merge "
                    f'them into one class with synonyms.')
            seen[key] = i
        _check_shared_synonyms(parsed, source, duplicate_synonyms)
        self._classes = parsed
        self.source = source

    # ------------------------------------------------------------ builders
    @classmethod
    def from_metainfo(cls, metainfo: dict) -> 'Vocabulary':
        """From a dataset's ``METAINFO`` (or ``dataset.metainfo``) dict.

        A dataset's class list is taken as published: ADE-847 names two
        classes ``'pot'`` (``'pot, flowerpot'`` and ``'pot'``; likewise
        ``'bag'``, ``'basket'``, ...), so two classes may share a display name
        and a synonym here; user vocabularies must not.
        """
        if not isinstance(metainfo, dict) or \
                not isinstance(metainfo.get('classes'), (list, tuple)):
            raise ValueError(
                'Vocabulary.from_metainfo: the metainfo has no "classes" list; '
                'set METAINFO = dict(classes=(...)) on the dataset or pass '
                'the vocabulary explicitly.')
        return cls(tuple(metainfo['classes']), source='dataset METAINFO',
                   duplicate_synonyms='ignore', unique_names=False)

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike],
                  duplicate_synonyms: str = 'warn') -> 'Vocabulary':
        """From a text file: one class per line, comma-separated synonyms.

        A line with ``;`` (the class separator of typed text, not of files)
        gives a ``UserWarning`` naming it: it is read as one class. A
        synonym shared by two classes gives a ``UserWarning`` naming both
        (``duplicate_synonyms='error'`` raises instead). A file whose sharing
        is deliberate (a published name list kept as published) says so with
        a comment line starting with ``# allow-shared-synonyms``; one whose
        classes may share their first name, with ``# allow-duplicate-names``.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f'Vocabulary file not found: {path!r} (one class per line, '
                f'comma-separated synonyms).')
        try:
            with open(path, encoding='utf-8-sig') as f:
                lines = [line.strip() for line in f]
        except UnicodeDecodeError as e:
            raise ValueError(
                f'Vocabulary file {path!r} is not UTF-8 text ({e}); save it '
                f'as UTF-8 (one class per line).') from e
        classes = [line for line in lines if line and not line.startswith('#')]
        _warn_class_separators(path, lines)
        if any(line.lower().startswith(ALLOW_SHARED_SYNONYMS) for line in lines):
            duplicate_synonyms = 'ignore'
        unique = not any(line.lower().startswith(ALLOW_DUPLICATE_NAMES) for line in lines)
        return cls(classes, source=f'file {path}',
                   duplicate_synonyms=duplicate_synonyms, unique_names=unique)

    @classmethod
    def build(cls, vocabulary: VocabularyLike) -> 'Vocabulary':
        """Builds a vocabulary from any supported source.

        Args:
            vocabulary: A :class:`Vocabulary`, a path to a text file, a dict
                with a ``classes`` key (dataset METAINFO) or a sequence of
                classes.
        """
        if isinstance(vocabulary, Vocabulary):
            return vocabulary
        if isinstance(vocabulary, (str, os.PathLike)):
            if os.path.isfile(os.fspath(vocabulary)):
                return cls.from_file(vocabulary)
            raise ValueError(
                f'Vocabulary {os.fspath(vocabulary)!r} is a string but not an '
                f'existing file; pass a list of class names (e.g. '
                f"['cat', 'dog, puppy']) or the path of a text file.")
        if isinstance(vocabulary, dict):
            return cls.from_metainfo(vocabulary)
        return cls(vocabulary)

    # ------------------------------------------------------------ views
    @property
    def classes(self) -> Tuple[Tuple[str, ...], ...]:
        """Names of every class, synonyms included."""
        return self._classes

    @property
    def class_names(self) -> Tuple[str, ...]:
        """The display (first) name of every class."""
        return tuple(names[0] for names in self._classes)

    @property
    def names(self) -> Tuple[str, ...]:
        """All names, class by class, in order (the text encoder's input)."""
        return tuple(n for names in self._classes for n in names)

    @property
    def name_to_class(self) -> Tuple[int, ...]:
        """For every entry of :attr:`names`, the index of its class."""
        return tuple(i for i, names in enumerate(self._classes) for _ in names)

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def num_names(self) -> int:
        return sum(len(names) for names in self._classes)

    def to_list(self) -> List[str]:
        """The classes as METAINFO-style strings (comma-separated synonyms)."""
        return [', '.join(names) for names in self._classes]

    def __len__(self) -> int:
        return len(self._classes)

    def __iter__(self) -> Iterator[Tuple[str, ...]]:
        return iter(self._classes)

    def __getitem__(self, index: int) -> Tuple[str, ...]:
        return self._classes[index]

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self._classes == other._classes

    def __hash__(self) -> int:
        return hash(self._classes)

    def __repr__(self) -> str:
        head = ', '.join('|'.join(n) for n in self._classes[:5])
        more = ', ...' if len(self) > 5 else ''
        return (f'Vocabulary({len(self)} classes, {self.num_names} names from '
                f'{self.source}: {head}{more})')
