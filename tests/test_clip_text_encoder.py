"""OpenCLIPTextEncoder: EOT-truncated encoding, templates, synonyms, cache."""
import os
import shutil

import open_clip
import pytest
import torch
import torch.nn.functional as F

from mmovss.models.text_encoders import ClassEmbeddings, OpenCLIPTextEncoder
from mmovss.testing.clip import build_tiny_clip, tiny_clip_cfg
from mmovss.vocab import Vocabulary

PROMPTS = ['a photo of a cat.', 'x', 'there is a small hippopotamus in the '
           'muddy river next to the old wooden boat in the scene.',
           'a dog', 'This is a photo of a medium traffic light.']


@pytest.fixture(scope='module')
def clip_file(tmp_path_factory):
    """A tiny random CLIP saved to a file, and the model itself."""
    model = build_tiny_clip(tiny_clip_cfg('vit'), seed=1)
    path = tmp_path_factory.mktemp('weights') / 'tiny_clip.pt'
    torch.save(model.state_dict(), path)
    return str(path), model


def make_encoder(clip_file, **kwargs):
    kwargs.setdefault('templates', 'single')
    return OpenCLIPTextEncoder(model_cfg=tiny_clip_cfg('vit'),
                               pretrained=clip_file[0], **kwargs)


class TowerSpy:
    """Records the token lengths the text transformer is run on."""

    def __init__(self, encoder):
        self.lengths = []
        encoder.tower.register_forward_pre_hook(
            lambda m, args: self.lengths.append(args[0].shape[1]))


def reference(model, prompts):
    with torch.no_grad():
        return model.encode_text(open_clip.tokenize(prompts), normalize=True)


def test_truncated_encoding_equals_full_encode_text(clip_file):
    encoder = make_encoder(clip_file, batch_size=2)
    spy = TowerSpy(encoder)
    with torch.no_grad():
        ours = encoder.encode_prompts(PROMPTS)
    torch.testing.assert_close(ours, reference(clip_file[1], PROMPTS),
                               atol=1e-5, rtol=0)
    assert max(spy.lengths) < 77 and len(spy.lengths) == 3
    assert min(spy.lengths) <= 5  # short prompts are cut short


def test_untruncated_path_agrees(clip_file):
    encoder = make_encoder(clip_file, truncate=False)
    spy = TowerSpy(encoder)
    with torch.no_grad():
        full = encoder.encode_prompts(PROMPTS)
    assert spy.lengths == [77]
    torch.testing.assert_close(full, reference(clip_file[1], PROMPTS),
                               atol=1e-5, rtol=0)


def test_template_ensemble(clip_file):
    templates = ['a photo of a {}.', 'there is a {} in the scene.',
                 'itap of my {}']
    encoder = make_encoder(clip_file, templates=templates)
    names = ['cat', 'traffic light']
    per_template = torch.stack(
        [reference(clip_file[1], [t.format(n) for t in templates])
         for n in names])
    expected = F.normalize(per_template.mean(dim=1), dim=-1)
    torch.testing.assert_close(encoder.embed_names(names), expected,
                               atol=1e-5, rtol=0)


def test_synonyms_reduce_to_classes(clip_file):
    encoder = make_encoder(clip_file)
    embeds = encoder(['cat, kitty', 'dog', 'sky, clouds, heaven'])
    assert isinstance(embeds, ClassEmbeddings)
    assert embeds.embeds.shape == (6, 32)
    assert embeds.name_to_class.tolist() == [0, 0, 1, 2, 2, 2]
    logits = torch.randn(2, 6, 3, 4, requires_grad=True)
    reduced = embeds.reduce(logits, dim=1)
    assert reduced.shape == (2, 3, 3, 4)
    expected = torch.stack([logits[:, :2].amax(1), logits[:, 2],
                            logits[:, 3:].amax(1)], dim=1)
    torch.testing.assert_close(reduced, expected)
    reduced.sum().backward()
    assert logits.grad.sum() == 2 * 3 * 3 * 4  # one winner per class
    mean = ClassEmbeddings(embeds.embeds, embeds.name_to_class,
                           embeds.vocabulary, 'mean')
    query_logits = torch.randn(5, 6)  # mask-classification: (Q, N_names)
    expected = torch.stack([query_logits[:, :2].mean(1), query_logits[:, 2],
                            query_logits[:, 3:].mean(1)], dim=1)
    torch.testing.assert_close(mean.reduce(query_logits, dim=-1), expected)
    with pytest.raises(ValueError, match='one per name'):
        embeds.reduce(torch.randn(2, 3), dim=1)


def test_memory_cache_hit(clip_file):
    encoder = make_encoder(clip_file)
    spy = TowerSpy(encoder)
    first = encoder(['cat', 'dog']).embeds
    calls = len(spy.lengths)
    again = encoder(Vocabulary(['dog, cat'])).embeds  # same names, reordered
    assert len(spy.lengths) == calls
    torch.testing.assert_close(again, first.flip(0))
    encoder(['cat', 'bird'])  # only the new name is encoded
    assert len(spy.lengths) == calls + 1


def test_disk_cache_hit_and_invalidation(clip_file, tmp_path):
    cache = str(tmp_path / 'cache')
    names = ['cat', 'dog', 'traffic light']
    cold = make_encoder(clip_file, cache_dir=cache)
    expected = cold.embed_names(names)
    assert len(os.listdir(cache)) == 1

    warm = make_encoder(clip_file, cache_dir=cache)  # a new process, say
    spy = TowerSpy(warm)
    assert torch.equal(warm.embed_names(names), expected)
    assert spy.lengths == []

    other_templates = make_encoder(clip_file, cache_dir=cache,
                                   templates=['itap of a {}'])
    spy = TowerSpy(other_templates)
    other_templates.embed_names(names)
    assert spy.lengths and len(os.listdir(cache)) == 2

    other_file = str(tmp_path / 'other.pt')
    torch.save(build_tiny_clip(tiny_clip_cfg('vit'), seed=2).state_dict(),
               other_file)
    other_weights = OpenCLIPTextEncoder(model_cfg=tiny_clip_cfg('vit'),
                                        pretrained=other_file,
                                        templates='single', cache_dir=cache)
    assert not torch.allclose(other_weights.embed_names(names), expected)
    assert len(os.listdir(cache)) == 3


def test_loading_new_weights_invalidates_cache(clip_file, tmp_path):
    encoder = make_encoder(clip_file, cache_dir=str(tmp_path))
    before = encoder.embed_names(['cat', 'dog'])
    identity = encoder.weights_identity
    new = build_tiny_clip(tiny_clip_cfg('vit'), seed=9)
    state = {f'tower.{k}': v for k, v in new.state_dict().items()
             if k.split('.')[0] in ('token_embedding', 'positional_embedding',
                                    'transformer', 'ln_final',
                                    'text_projection')}
    encoder.load_state_dict(state)  # as mmengine's load_from does
    after = encoder.embed_names(['cat', 'dog'])
    assert encoder.weights_identity != identity
    assert not torch.allclose(before, after)
    torch.testing.assert_close(
        after, reference(new, ['a photo of a cat.', 'a photo of a dog.']),
        atol=1e-5, rtol=0)


def test_corrupt_and_stale_files_are_recomputed(clip_file, tmp_path):
    cache = str(tmp_path)
    names = ['cat', 'dog']
    encoder = make_encoder(clip_file, cache_dir=cache)
    expected = encoder.embed_names(names)
    path = encoder.disk_cache.path_for(encoder.cache_key(names))

    with open(path, 'rb') as f:  # flip bytes inside the stored embeddings
        start = f.read().index(expected.numpy().tobytes())
    with open(path, 'r+b') as f:
        f.seek(start + 8)
        f.write(b'\x00garbage\xff' * 4)
    fresh = make_encoder(clip_file, cache_dir=cache)
    with pytest.warns(UserWarning, match='corrupt'):
        torch.testing.assert_close(fresh.embed_names(names), expected)
    make_encoder(clip_file, cache_dir=cache).embed_names(names)  # rewritten

    # A file of another vocabulary put at this key's path: stale.
    other = make_encoder(clip_file, cache_dir=cache)
    other.embed_names(['sky', 'road'])
    shutil.copy(other.disk_cache.path_for(other.cache_key(['sky', 'road'])),
                path)
    fresh = make_encoder(clip_file, cache_dir=cache)
    with pytest.warns(UserWarning, match='stale'):
        torch.testing.assert_close(fresh.embed_names(names), expected)


def test_trainable_encoder_has_gradients_and_no_cache(clip_file):
    encoder = make_encoder(clip_file, frozen=False)
    spy = TowerSpy(encoder)
    first = encoder(['cat']).embeds
    assert first.requires_grad
    encoder(['cat'])
    assert len(spy.lengths) == 2
    first.sum().backward()
    assert encoder.tower.token_embedding.weight.grad is not None


def test_trainable_encoder_keeps_the_memory_of_its_current_weights_only(
        clip_file, tmp_path):
    """Each validation of a fine-tuned encoder (CAT-Seg) embeds under new
    weights: the memory keeps only their entries, and the disk cache is not
    filled with one file per validation. A fine-tuned checkpoint loaded
    twice still reuses its file."""
    cache = tmp_path / 'cache'
    encoder = make_encoder(clip_file, frozen=False, cache_dir=str(cache))
    for step in range(3):
        encoder(['cat']).embeds.sum().backward()  # a training step
        with torch.no_grad():
            encoder.tower.token_embedding.weight.add_(0.01)
            encoder(['cat', 'dog'])  # its validation
        contexts = {context for context, _ in encoder._memory}
        assert len(contexts) == 1 and len(encoder._memory) == 2
    assert not list(cache.glob('*.pth'))  # trained weights: never reused

    tuned = {k: v + 0.01 for k, v in encoder.state_dict().items()}
    first = make_encoder(clip_file, frozen=False, cache_dir=str(cache))
    first.load_state_dict(tuned)
    with torch.no_grad():
        expected = first.embed_names(['cat', 'dog'])
    assert len(list(cache.glob('*.pth'))) == 1
    again = make_encoder(clip_file, frozen=False, cache_dir=str(cache))
    again.load_state_dict(tuned)
    spy = TowerSpy(again)
    with torch.no_grad():
        torch.testing.assert_close(again.embed_names(['cat', 'dog']), expected)
    assert spy.lengths == []  # read from its file


def test_bad_arguments(clip_file):
    with pytest.raises(ValueError, match='synonym_reduction'):
        make_encoder(clip_file, synonym_reduction='min')
    with pytest.raises(ValueError, match='empty'):
        make_encoder(clip_file)([])


def test_cache_key_covers_what_the_weights_do_not(clip_file, tmp_path):
    """One weight file, another activation (``quick_gelu``) or tokenizer:
    other embeddings, so neither cache may serve the first ones."""
    cache = str(tmp_path / 'cache')
    names = ['cat', 'dog']
    gelu = make_encoder(clip_file, cache_dir=cache, quick_gelu=False)
    first = gelu.embed_names(names)
    expected = make_encoder(clip_file, quick_gelu=True).embed_names(names)
    assert not torch.allclose(first, expected)
    quick = make_encoder(clip_file, cache_dir=cache, quick_gelu=True)
    torch.testing.assert_close(quick.embed_names(names), expected)
    assert len(os.listdir(cache)) == 2

    # A tokenizer set on the encoder (this one drops the prompt's '.').
    gelu.tokenizer = open_clip.tokenizer.SimpleTokenizer(clean='canonicalize')
    other = gelu.embed_names(names)  # memory and disk caches hold `first`
    assert not torch.allclose(other, first)
    assert len(os.listdir(cache)) == 3


def test_weight_file_replaced_in_place_is_not_served_from_disk_cache(tmp_path):
    """The file's SHA-256 keys the cache; a file replaced by one of the same
    size with its mtime kept (``cp -p``, ``tar x``) must be hashed again."""
    os.makedirs(tmp_path / 'new')
    path, new = str(tmp_path / 'clip.pt'), str(tmp_path / 'new' / 'clip.pt')
    torch.save(build_tiny_clip(tiny_clip_cfg('vit'), seed=1).state_dict(), path)
    torch.save(build_tiny_clip(tiny_clip_cfg('vit'), seed=2).state_dict(), new)
    assert os.path.getsize(path) == os.path.getsize(new)
    cache, names = str(tmp_path / 'cache'), ['cat', 'dog']
    old = make_encoder((path, None), cache_dir=cache).embed_names(names)
    stat = os.stat(path)
    os.replace(new, path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    served = make_encoder((path, None), cache_dir=cache).embed_names(names)
    fresh = make_encoder((path, None)).embed_names(names)
    assert not torch.allclose(fresh, old)
    torch.testing.assert_close(served, fresh)


def test_unwritable_cache_directory_warns_once_and_embeds(clip_file, tmp_path,
                                                         monkeypatch):
    blocked = tmp_path / 'a_file'
    blocked.write_text('')  # a file where the cache directory should be
    encoder = make_encoder(clip_file, cache_dir=str(blocked))
    expected = make_encoder(clip_file).embed_names(['cat'])
    with pytest.warns(UserWarning, match="a_file' cannot be written.*"
                      'cache_dir=None'):
        torch.testing.assert_close(encoder.embed_names(['cat']), expected)

    import tempfile

    def read_only(*args, **kwargs):
        raise PermissionError(13, 'Permission denied', kwargs.get('dir'))

    monkeypatch.setattr(tempfile, 'mkstemp', read_only)
    encoder = make_encoder(clip_file, cache_dir=str(tmp_path / 'ro'))
    with pytest.warns(UserWarning, match='PermissionError'):
        encoder.embed_names(['cat'])
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        encoder.embed_names(['dog'])  # said once
