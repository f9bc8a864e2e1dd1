"""Vocabulary parsing/validation and prompt template sets."""
import pytest

from mmovss.vocab import Vocabulary, get_templates


def test_synonyms_and_index():
    vocab = Vocabulary(['cat, kitty', ('dog', 'puppy, hound'), 'sky'])
    assert vocab.class_names == ('cat', 'dog', 'sky')
    assert vocab.names == ('cat', 'kitty', 'dog', 'puppy', 'hound', 'sky')
    assert vocab.name_to_class == (0, 0, 1, 1, 1, 2)
    assert (vocab.num_classes, vocab.num_names, len(vocab)) == (3, 6, 3)
    assert vocab.to_list() == ['cat, kitty', 'dog, puppy, hound', 'sky']
    assert Vocabulary(vocab.to_list()) == vocab


def test_whitespace_is_normalised():
    vocab = Vocabulary(['  traffic   light ,stop  sign'])
    assert vocab.names == ('traffic light', 'stop sign')


def test_from_metainfo_and_file(tmp_path):
    meta = dict(classes=('wall, brick wall', 'floor'), palette=[[0, 0, 0]] * 2)
    assert Vocabulary.from_metainfo(meta).names == ('wall', 'brick wall', 'floor')
    path = tmp_path / 'names.txt'
    path.write_text('# my classes\nwall, brick wall\n\nfloor\n', encoding='utf-8')
    from_file = Vocabulary.build(str(path))
    assert from_file.classes == (('wall', 'brick wall'), ('floor', ))
    assert Vocabulary.build(meta) == from_file
    assert Vocabulary.build(from_file) is from_file


@pytest.mark.parametrize('classes, match', [
    ([], 'empty'),
    (['cat', 'dog, , puppy'], 'empty name'),
    (['cat', ''], 'empty name'),
    (['cat', 'dog', 'Cat, kitty'], "both named 'Cat'|both named 'cat'"),
])
def test_bad_vocabularies_are_rejected(classes, match):
    with pytest.raises(ValueError, match=match):
        Vocabulary(classes)


def test_bad_sources_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match='not an existing file'):
        Vocabulary.build('cat')
    with pytest.raises(TypeError, match='must be a string'):
        Vocabulary(['cat', 3])
    with pytest.raises(ValueError, match='no "classes" list'):
        Vocabulary.from_metainfo(dict(palette=[]))
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n# nothing\n')
    with pytest.raises(ValueError, match='empty'):
        Vocabulary.from_file(empty)
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        Vocabulary.from_file(tmp_path / 'missing.txt')


def test_template_sets():
    assert len(get_templates('imagenet')) == 80
    assert len(get_templates('vild')) == 14
    assert get_templates('single') == ('a photo of a {}.', )
    assert get_templates(['a {} here.', 'the {}']) == ('a {} here.', 'the {}')
    with pytest.raises(ValueError, match='placeholder'):
        get_templates(['a photo.'])
    with pytest.raises(ValueError, match='placeholder'):
        get_templates(['a {} and {}.'])
    with pytest.raises(ValueError, match='Unknown prompt template set'):
        get_templates('imagenet80')
    with pytest.raises(ValueError, match='duplicates'):
        get_templates(['a {}.', 'a {}.'])


@pytest.mark.parametrize('template', ['a photo of a {}}.', 'a {} photo }', '}{}'])
def test_a_stray_closing_brace_is_refused_when_the_templates_are_given(template):
    """str.format would fail on it only at the first embedding, with
    "Single '}' encountered in format string" naming no template."""
    with pytest.raises(ValueError, match='no other brace'):
        get_templates(['a {}.', template])


def test_a_name_repeated_in_one_class_is_reported():
    """'kitty, Kitty' is one name for CLIP (its tokenizer lower-cases): it
    counts twice in the softmax over all names of the training-free heads,
    which can send a pixel below their prob_thd (as below), and in a mean
    over synonyms."""
    import torch

    from mmovss.models.decode_heads.training_free_head import TrainingFreeHead
    from mmovss.models.text_encoders import ClassEmbeddings
    head = TrainingFreeHead(in_channels=4, logit_scale=10, prob_thd=0.5)

    def label(classes, sims):
        vocab = Vocabulary(classes, duplicate_synonyms='ignore')
        embeds = ClassEmbeddings(torch.zeros(vocab.num_names, 4),
                                 torch.tensor(vocab.name_to_class), vocab)
        sims = torch.tensor(sims)[:, None, None].expand(-1, 1, 1).contiguous()
        return int(head.predict_labels(sims, embeds, (1, 1)).flatten())

    assert label(['background', 'cat', 'dog'], [0.0, 0.1, 0.17]) == 2
    assert label(['background', 'cat, cat', 'dog'], [0.0, 0.1, 0.1, 0.17]) == 0
    with pytest.warns(UserWarning, match=r"'Kitty' in class 0 .*remove the repeat"):
        vocab = Vocabulary(['cat, kitty, Kitty', 'dog'])
    assert vocab.names == ('cat', 'kitty', 'Kitty', 'dog')  # kept, as given
    with pytest.raises(ValueError, match="'cat' in class 1"):
        Vocabulary(['dog', 'cat, cat'], duplicate_synonyms='error')
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Vocabulary(['cat, cat'], duplicate_synonyms='ignore')
        Vocabulary(['cat, kitty', 'dog, puppy'])


def test_published_dataset_lists_may_repeat_a_display_name():
    """ADE-847 as published has two 'pot' classes: the dataset vocabulary
    builds (DatasetVocabularyHook, --benchmark ade20k_847), a user list does not."""
    from mmovss.datasets import ADE20K847Dataset
    vocab = Vocabulary.from_metainfo(ADE20K847Dataset.METAINFO)
    assert vocab.num_classes == 847
    pots = [i for i, name in enumerate(vocab.class_names) if name == 'pot']
    assert len(pots) == 2 and vocab.classes[pots[0]] != vocab.classes[pots[1]]
    with pytest.raises(ValueError, match="both named 'pot'"):
        Vocabulary(['pot, flowerpot', 'sky', 'pot'])



def test_background_names_are_one_rule_for_every_caller():
    """The custom-dataset configs, the inferencer's background rule and the
    vocabulary report decide "is this a background class" with one function."""
    from mmovss.datasets.custom import ClassList
    from mmovss.datasets.custom_config import _names_a_background
    from mmovss.vocab import is_background_name
    assert is_background_name(' Background ') and is_background_name('others')
    assert not is_background_name('background wall') and not is_background_name('cat')
    classes = ClassList(['Other, rest', 'cat'])
    assert _names_a_background(classes, 0) and not _names_a_background(classes, 1)
    assert not _names_a_background(classes, None) and not _names_a_background(classes, 2)


def test_a_file_line_with_the_typed_class_separator_is_reported(tmp_path):
    """``--vocabulary "cat; dog"`` is two classes; the file line ``cat; dog``
    is one class of that name (a file has one class per line)."""
    path = tmp_path / 'classes.txt'
    path.write_text('# cat; dog in a comment is fine\ncat; dog\nsky, clouds\n')
    with pytest.warns(UserWarning, match=r"has ';' in line 2 'cat; dog'.*own line"):
        vocab = Vocabulary.from_file(path)
    assert vocab.class_names == ('cat; dog', 'sky')  # read as written
    path.write_text('cat, kitty\nsky\n')
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Vocabulary.from_file(path)
