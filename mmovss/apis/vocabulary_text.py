"""A vocabulary typed on one line: ``"cat, kitten; grass; sky"``.

Command lines and text boxes take the whole vocabulary as one string:
classes are separated by semicolons (or new lines) and the synonyms of one
class by commas, so ``"cat, kitten; grass; sky"`` is three classes, the first
named ``cat`` or ``kitten``. Files use one class per line (see
:meth:`mmovss.vocab.Vocabulary.from_file`); :func:`vocabulary_from_file`
reads one with the same rule as typed text: at least two classes.
"""
import re

from mmovss.vocab import Vocabulary

__all__ = ['vocabulary_from_text', 'vocabulary_from_file']


def vocabulary_from_text(text: str, source: str = 'text') -> Vocabulary:
    """Parses ``"cat, kitten; grass; sky"`` into a :class:`Vocabulary`.

    Args:
        text (str): Classes separated by ``;`` or new lines, synonyms of a
            class by ``,``. Empty segments (a trailing ``;``) are ignored.
        source (str): How to name the text in error messages.

    Returns:
        Vocabulary: The classes, in order.

    Raises:
        ValueError: No class at all, an empty synonym, a duplicated class, a
            single class with synonyms but no ``;`` (almost always meant to
            be several classes: ``"cat, dog"`` is one class named ``cat`` or
            ``dog``; write ``"cat; dog"``), or a single class (every pixel is
            labelled with the class that scores highest, so one class labels
            the whole image with it).
    """
    if not isinstance(text, str):
        raise TypeError(f'{source}: expected a string such as '
                        f'"cat, kitten; grass; sky", got {type(text).__name__}.')
    classes = [part.strip() for part in re.split(r'[;\n]', text)]
    classes = [part for part in classes if part]
    if not classes:
        raise ValueError(
            f'{source} is empty: name at least two classes, separated by '
            f'";" (synonyms of one class by ","), e.g. "cat, kitten; grass; '
            f'sky".')
    vocabulary = Vocabulary(classes, source=source)
    if len(vocabulary) == 1 and len(vocabulary[0]) > 1:
        raise ValueError(
            f'{source} {text!r} is ONE class with the synonyms '
            f'{", ".join(vocabulary[0])}: separate classes with ";" (e.g. '
            f'"{"; ".join(vocabulary[0])}"); commas join synonyms of a class.')
    if len(vocabulary) == 1:
        raise ValueError(
            f'{source} {text!r} names one class: every pixel gets the class that '
            f'scores highest, so the whole image would be {vocabulary[0][0]!r}. Name at '
            f'least two classes, separated by ";": add the other things in the image '
            f'(e.g. "{vocabulary[0][0]}; background").')
    return vocabulary


def vocabulary_from_file(path, source: str = '--vocabulary-file') -> Vocabulary:
    """Reads a vocabulary file (one class per line, synonyms by ``,``).

    The demo's rule for typed vocabularies holds for files too: a single
    class is refused, since every pixel gets the class that scores highest
    and one class would label the whole image with it.

    Args:
        path (str | os.PathLike): The text file.
        source (str): How to name the file's option in error messages.

    Returns:
        Vocabulary: The classes, in file order.

    Raises:
        FileNotFoundError: No such file.
        ValueError: What :meth:`Vocabulary.from_file` refuses, or one class.
    """
    vocabulary = Vocabulary.from_file(path)
    if len(vocabulary) == 1:
        names = list(vocabulary[0])
        synonyms = (f' (its line {", ".join(names)} is ONE class: commas join synonyms of '
                    f'a class)' if len(names) > 1 else '')
        raise ValueError(
            f'{source} {str(path)!r} names one class{synonyms}: every pixel gets the class '
            f'that scores highest, so the whole image would be {names[0]!r}. Name at least '
            f'two classes, one per line: add the other things in the image (e.g. a line '
            f'"background").')
    return vocabulary
