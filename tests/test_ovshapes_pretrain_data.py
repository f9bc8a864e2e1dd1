"""The tiny CLIP's pretraining data (issue #22, item 3): crowded scenes,
zoomed crops and captions that name exactly the classes visible."""
import re

import numpy as np
import pytest

from mmovss.ovshapes import pretrain, world

NAMES = world.class_names()
OBJECTS = NAMES[len(world.STUFF):]


def _named_objects(text):
    """Object class names a caption mentions (word-boundary match)."""
    return {n for n in OBJECTS if re.search(rf'\b{n}\b', text)}


def _named_stuff(text):
    return {s for s, phrase in world.STUFF_PHRASES.items() if phrase in text}


def _present(label, min_pixels=1):
    counts = np.bincount(label.ravel(), minlength=len(NAMES))
    return {NAMES[i] for i in np.flatnonzero(counts >= min_pixels)}


def test_crowded_scenes_name_exactly_their_visible_classes():
    rng = np.random.default_rng(0)
    num_objects, cut, empty = [], 0, 0
    for _ in range(150):
        scene = world.render_crowded_scene(rng, num_objects=(0, 5), radius=(4, 15),
                                           min_pixels=12)
        present = _present(scene.label)
        assert set(scene.objects) | set(scene.stuff) == present
        # every object named has at least min_pixels pixels
        assert _present(scene.label, 12) >= set(scene.objects)
        num_objects.append(len(scene.objects))
        empty += not scene.objects
        border = np.concatenate([scene.label[0], scene.label[-1], scene.label[:, 0],
                                 scene.label[:, -1]])
        cut += any(NAMES[i] in scene.objects for i in np.unique(border))
    # the recipe's variety: background-only images, crowded ones, objects cut by the border
    assert empty > 0 and max(num_objects) >= 4 and cut > 10


def test_zoomed_crop_names_exactly_the_classes_in_the_crop():
    rng = np.random.default_rng(1)
    for _ in range(60):
        scene = world.render_crowded_scene(rng, num_objects=(2, 5))
        crop = int(rng.integers(16, 65))
        top, left = (int(v) for v in rng.integers(0, 64 - crop + 1, size=2))
        out = world.crop_scene(scene, top, left, crop, min_pixels=12)
        assert out.image.shape == (64, 64, 3) and out.label.shape == (64, 64)
        # nearest-neighbour zoom of the source window
        assert out.label[0, 0] == scene.label[top, left]
        assert out.label[-1, -1] == scene.label[top + crop - 1, left + crop - 1]
        assert set(np.unique(out.label)) <= set(np.unique(
            scene.label[top:top + crop, left:left + crop]))
        named = set(out.objects) | set(out.stuff)
        assert named == _present(out.label, 12)
        text = pretrain.scene_caption(out.stuff, out.objects, rng)
        assert _named_objects(text) == set(out.objects), text
        assert _named_stuff(text) == set(out.stuff), text


def test_crop_outside_the_scene_is_refused():
    scene = world.render_crowded_scene(np.random.default_rng(2))
    with pytest.raises(ValueError, match='outside'):
        world.crop_scene(scene, 40, 0, 32)


def test_captions_vary_object_order_and_negatives_change_one_word():
    rng = np.random.default_rng(3)
    objects = ('striped red', 'dark blue', 'plain green')
    orders = set()
    for _ in range(30):
        text = pretrain.scene_caption(('sand',), objects, rng)
        assert _named_objects(text) == set(objects) and 'sand' in text
        orders.add(tuple(sorted(objects, key=text.index)))
        changed = pretrain.changed_attribute(objects, rng)
        diff = [(a, b) for a, b in zip(objects, changed) if a != b]
        assert len(diff) == 1
        (a, b), = diff
        assert sum(x != y for x, y in zip(a.split(), b.split())) == 1
    assert len(orders) >= 4
    # a scene whose objects cover the background still gets a caption
    assert _named_objects(pretrain.scene_caption((), objects, rng)) == set(objects)


@pytest.mark.parametrize('recipe', ['crowded', 'single'])
def test_sample_batch_recipes(recipe):
    tokenizer = pretrain.ovshapes_tokenizer()
    images, tokens, negatives = pretrain.sample_batch(
        np.random.default_rng(4), 16, tokenizer, recipe=recipe)
    assert images.shape == (16, 3, 64, 64) and tokens.shape[0] == 16
    assert negatives is None or negatives.shape[1] == tokens.shape[1]
    again = pretrain.sample_batch(np.random.default_rng(4), 16, tokenizer, recipe=recipe)
    assert (again[0] == images).all() and (again[1] == tokens).all()
