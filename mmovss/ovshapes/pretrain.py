"""Contrastive pretraining of a tiny open_clip model on OVShapes captions.

The loss is CLIP's symmetric InfoNCE (Radford et al., ICML 2021, Fig. 3)
with hard-negative texts: for a batch of B images and captions,

    L = 1/2 [ CE(s I [T; N]^T, diag) + CE(s T I^T, diag) ]

where I, T are the L2-normalised image and caption embeddings, N are
embeddings of hard-negative captions (the true caption with one colour or
pattern word changed, :func:`mmovss.ovshapes.world.hard_negative`) that match
no image, and s is CLIP's learned logit scale. Scenes are rendered on the
fly, so no image is seen twice. Captions name every class of the world,
unseen compositions included (as every concept appears somewhere in CLIP's web
data); only *segmentation* training hides the unseen classes.

The scenes follow a recipe (:data:`RECIPES`). The default, ``'crowded'``
(issue #22), gives the data a real CLIP's web-scale data gives for free so
that its patch tokens, not only its class token, carry their region's
meaning: background-only images, up to four objects of many sizes cut by the
image border as in random crops (a large object filling the image is a zoom
at the native texture scale), captions that name exactly the classes visible
(in random order) and background classes under several names, the bare
segmentation name included. Zoomed random crops (``zoom_prob``) are an
option, off by default (they did not help in screening, see
``configs/ovshapes/README.md``). ``'single'`` reproduces
the first shipped tiny CLIP's batches draw for draw.

The shipped tiny CLIP is trained in two stages (``init``): ``'crowded'``
from scratch, then ``'single'`` from there. The second stage, like a
curriculum that ends on clean whole-object images, restores the class
token's pattern words, which the crowded captions blur (zero-shot accuracy
on unseen compositions 0.60 -> 0.95), and it also sharpens the patch tokens
(training-free unseen mIoU about doubles); ``'single'`` alone gives neither
meaningful patch tokens nor this accuracy (README, "The tiny CLIP").
"""
import copy
import json
import math
import os
import os.path as osp
import time
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from mmovss.io.temporary import temporary_beside

from . import world

OVSHAPES_CLIP_CFG = dict(
    embed_dim=64,
    vision_cfg=dict(image_size=64, layers=3, width=128, patch_size=8, head_width=32),
    text_cfg=dict(context_length=32, vocab_size=49408, width=64, heads=2, layers=3),
)
"""open_clip model config of the OVShapes tiny CLIP (64 px input, patch 8)."""

CLIP_MEAN = (122.771, 116.746, 104.094)
CLIP_STD = (68.501, 66.632, 70.323)
"""OpenAI CLIP pixel statistics (0-255 scale); the tiny CLIP uses them too."""

ZERO_SHOT_TEMPLATE = 'a {} object.'


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> normalised (B, 3, H, W) float32."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


RECIPES = {
    'single': dict(),
    'crowded': dict(num_objects=(0, 4), radius=(4.0, 40.0), min_pixels=12, zoom_prob=0.0,
                    crop=(24, 64), stuff_synonyms=True),
}
"""Pretraining-data recipes (``pretrain(recipe=...)``, ``--recipe``).

* ``'single'`` (the first shipped tiny CLIP): :func:`world.render_scene`
  scenes as in the worlds on disk, one object (40 %) or one to three (60 %),
  radius 8-15 px, wholly inside the image; captions name every object and
  background (:func:`world.caption`).
* ``'crowded'``: :func:`world.render_crowded_scene` scenes with
  ``num_objects`` objects of radius ``radius`` px, cut by the border as in a
  crop of a larger scene (background-only images included); with probability
  ``zoom_prob`` a random square crop of side ``crop`` px is zoomed to 64 px
  (:func:`world.crop_scene`). Captions (:func:`scene_caption`) name exactly
  the classes with at least ``min_pixels`` visible pixels, objects in random
  order, background classes by :data:`STUFF_SYNONYMS` if ``stuff_synonyms``.
  The longest captions (four objects, two backgrounds) can exceed the
  32-token context by a few tokens and lose their tail. ``single_fraction``
  (default 0) of every batch are ``'single'`` scenes and captions instead.
"""

_OBJECTS_ONLY_FORMS = ('a picture of {objects}.', '{objects}.', 'there is {objects}.')

STUFF_SYNONYMS = {'sky': ('the sky', 'sky'), 'grass': ('grass', 'the grass'),
                  'sand': ('sand', 'the sand'), 'wall': ('a brick wall', 'a wall', 'wall')}
"""Phrases of each background class in ``'crowded'`` captions (the worlds'
captions use :data:`world.STUFF_PHRASES` only); the bare class name is among
them, as segmentation vocabularies use it."""


def scene_caption(stuff: Sequence[str], objects: Sequence[str],
                  rng: np.random.Generator, stuff_synonyms: bool = False) -> str:
    """A caption naming the given classes, objects in random order.

    The phrasings of :func:`world.caption`; background-less and object-less
    scenes get a phrasing without the missing part. With ``stuff_synonyms``
    each background class is named by a random phrase of
    :data:`STUFF_SYNONYMS`, else by :data:`world.STUFF_PHRASES`.
    """
    objects = list(dict.fromkeys(objects))
    rng.shuffle(objects)
    if stuff_synonyms:
        stuff_phrase = world._join([STUFF_SYNONYMS[s][int(rng.integers(len(STUFF_SYNONYMS[s])))]
                                    for s in stuff])
    else:
        stuff_phrase = world._join([world.STUFF_PHRASES[s] for s in stuff])
    if not objects:
        return f'a picture of {stuff_phrase}.'
    form = world._OBJECT_FORMS[int(rng.integers(len(world._OBJECT_FORMS)))]
    phrase = world._join([form.format(o) for o in objects])
    forms = world._CAPTION_FORMS if stuff else _OBJECTS_ONLY_FORMS
    form = forms[int(rng.integers(len(forms)))]
    return form.format(objects=phrase, stuff=stuff_phrase)


def changed_attribute(objects: Sequence[str], rng: np.random.Generator) -> Tuple[str, ...]:
    """``objects`` with one colour or pattern word of one object changed."""
    objects = list(objects)
    i = int(rng.integers(len(objects)))
    pattern, colour = objects[i].split(' ')
    if rng.random() < 0.5:
        others = [p for p in world.PATTERNS if p != pattern]
        pattern = others[int(rng.integers(len(others)))]
    else:
        others = [c for c in world.COLOURS if c != colour]
        colour = others[int(rng.integers(len(others)))]
    objects[i] = world.object_class_name(pattern, colour)
    return tuple(objects)


def recipe_scene(rng: np.random.Generator, recipe: dict) -> world.Scene:
    """One pretraining scene of a ``'crowded'``-style recipe (:data:`RECIPES`)."""
    scene = world.render_crowded_scene(rng, num_objects=tuple(recipe['num_objects']),
                                       radius=tuple(recipe['radius']),
                                       min_pixels=recipe['min_pixels'])
    if recipe.get('zoom_prob', 0) and rng.random() < recipe['zoom_prob']:
        lo, hi = recipe['crop']
        crop = int(rng.integers(lo, hi + 1))
        top, left = (int(v) for v in rng.integers(0, world.IMAGE_SIZE - crop + 1, size=2))
        scene = world.crop_scene(scene, top, left, crop, min_pixels=recipe['min_pixels'])
    return scene


def sample_batch(rng: np.random.Generator, batch_size: int, tokenizer: Callable,
                 hard_negative_ratio: float = 0.5, recipe: Union[str, dict] = 'single'):
    """Renders a batch: images, caption tokens and hard-negative tokens.

    Args:
        recipe: A name in :data:`RECIPES` or a dict like its entries.
    """
    if isinstance(recipe, str):
        recipe = RECIPES[recipe]
    num_single = batch_size
    if recipe:
        num_single = int(round(batch_size * recipe.get('single_fraction', 0.0)))
    scenes, captions, negatives = [], [], []
    if recipe and num_single < batch_size:
        crowded = [recipe_scene(rng, recipe) for _ in range(batch_size - num_single)]
        synonyms = recipe.get('stuff_synonyms', False)
        scenes += crowded
        captions += [scene_caption(s.stuff, s.objects, rng, synonyms) for s in crowded]
        negatives += [scene_caption(s.stuff, changed_attribute(s.objects, rng), rng, synonyms)
                      for s in crowded if s.objects and rng.random() < hard_negative_ratio]
    if num_single:  # the first tiny CLIP's batches ('single'), draw for draw
        single = []
        for _ in range(num_single):
            counts = (1, 1) if rng.random() < 0.4 else (1, 3)
            single.append(world.render_scene(rng, num_objects=counts))
        scenes += single
        captions += [world.caption(s, rng) for s in single]
        negatives += [world.hard_negative(s, rng) for s in single
                      if s.objects and rng.random() < hard_negative_ratio]
    images = to_tensor(np.stack([s.image for s in scenes]))
    neg_tokens = tokenizer(negatives) if negatives else None
    return images, tokenizer(captions), neg_tokens


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor,
                     negative_emb: Optional[torch.Tensor], logit_scale: torch.Tensor):
    """Symmetric CLIP loss with extra negative texts (module docstring)."""
    image_emb = F.normalize(image_emb, dim=-1)
    text_emb = F.normalize(text_emb, dim=-1)
    texts = text_emb
    if negative_emb is not None:
        texts = torch.cat([text_emb, F.normalize(negative_emb, dim=-1)])
    scale = logit_scale.exp().clamp(max=100)
    target = torch.arange(image_emb.shape[0])
    loss_i = F.cross_entropy(scale * image_emb @ texts.t(), target)
    loss_t = F.cross_entropy(scale * text_emb @ image_emb.t(), target)
    return 0.5 * (loss_i + loss_t)


def single_object_set(rng: np.random.Generator, names: Sequence[str], per_class: int):
    """Images with exactly one object of each given class (for zero-shot tests)."""
    images, labels = [], []
    for label, name in enumerate(names):
        for _ in range(per_class):
            scene = world.render_scene(rng, object_pool=[name], num_objects=(1, 1))
            while name not in scene.objects:
                scene = world.render_scene(rng, object_pool=[name], num_objects=(1, 1))
            images.append(scene.image)
            labels.append(label)
    return np.stack(images), np.array(labels)


@torch.no_grad()
def zero_shot_accuracy(model, tokenizer: Callable, seed: int = 12345,
                       per_class: int = 20) -> Dict[str, float]:
    """Zero-shot classification of single-object images among the 36 objects.

    Each image shows one object on a background; the prediction is the
    object class whose prompt ``'a {name} object.'`` is closest. Chance is
    1/36. Returns accuracy on seen-class images, unseen-class images, all.
    """
    model.eval()
    objects = [world.object_class_name(p, c) for p, c in world.object_classes()]
    text = F.normalize(model.encode_text(tokenizer(
        [ZERO_SHOT_TEMPLATE.format(n) for n in objects])), dim=-1)
    images, labels = single_object_set(np.random.default_rng(seed), objects, per_class)
    pred = []
    for start in range(0, len(images), 256):
        emb = F.normalize(model.encode_image(to_tensor(images[start:start + 256])), dim=-1)
        pred.append((emb @ text.t()).argmax(-1))
    correct = torch.cat(pred).numpy() == labels
    unseen = np.isin(np.array(objects)[labels], world.unseen_class_names())
    return dict(seen=float(correct[~unseen].mean()), unseen=float(correct[unseen].mean()),
                all=float(correct.mean()), chance=1 / len(objects))


def pretrain(steps: int = 4000, batch_size: int = 128, lr: float = 1e-3,
             weight_decay: float = 0.1, warmup: int = 200, seed: int = 0,
             model_cfg: Optional[dict] = None, log_every: int = 100,
             eval_every: int = 0, logger: Callable[[str], None] = print,
             recipe: Union[str, dict] = 'crowded', init: Optional[str] = None):
    """Trains the tiny CLIP; returns (model, history).

    From scratch, or, with ``init``, continued from a saved tiny CLIP (a
    :func:`save_pretrained` file of the same ``model_cfg``, loaded by
    :func:`mmovss.models.utils.build_open_clip` as the configs load it).
    Deterministic given ``seed`` (and the same number of torch threads).
    """
    import open_clip
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = copy.deepcopy(model_cfg or OVSHAPES_CLIP_CFG)
    if init is None:
        model = open_clip.CLIP(**cfg)
    else:  # loaded as the configs load the shipped file
        from mmovss.models.utils import build_open_clip
        model, _ = build_open_clip(None, init, cfg)
    tokenizer = ovshapes_tokenizer(cfg)

    def decays(name, param):
        return param.ndim >= 2 and 'embedding' not in name

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    optim = torch.optim.AdamW([dict(params=decay, weight_decay=weight_decay),
                               dict(params=no_decay, weight_decay=0.0)], lr=lr, betas=(0.9, 0.98))

    def lr_at(step):
        if step < warmup:
            return lr * (step + 1) / warmup
        return 0.5 * lr * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))

    history = []
    start = time.time()
    model.train()
    for step in range(steps):
        for group in optim.param_groups:
            group['lr'] = lr_at(step)
        images, tokens, neg_tokens = sample_batch(rng, batch_size, tokenizer, recipe=recipe)
        texts = tokens if neg_tokens is None else torch.cat([tokens, neg_tokens])
        text_emb = model.encode_text(texts)
        loss = contrastive_loss(model.encode_image(images), text_emb[:len(tokens)],
                                text_emb[len(tokens):] if neg_tokens is not None else None,
                                model.logit_scale)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            history.append(dict(step=step + 1, loss=float(loss), seconds=time.time() - start))
            logger(f'step {step + 1}/{steps} loss {float(loss):.4f} '
                   f'scale {float(model.logit_scale.exp()):.1f} {time.time() - start:.0f}s')
        if eval_every and (step + 1) % eval_every == 0:
            accuracy = zero_shot_accuracy(model, tokenizer, per_class=5)
            logger(f'step {step + 1}: zero-shot {accuracy}')
            model.train()
    return model.eval(), history


def ovshapes_tokenizer(model_cfg: Optional[dict] = None):
    """open_clip's CLIP tokenizer at the tiny CLIP's context length."""
    import open_clip
    cfg = model_cfg or OVSHAPES_CLIP_CFG
    return open_clip.get_tokenizer(
        'ViT-B-16', context_length=cfg['text_cfg']['context_length'])


def save_pretrained(model, path: str, record: Optional[dict] = None) -> dict:
    """Saves a pretrained tiny CLIP as shipped, with a JSON record next to it.

    The state dict is stored with float16 tensors, as OpenAI ships CLIP
    (loaders cast to float32); the zero-shot accuracy in the record is
    that of the float16-rounded weights (``model`` gets them too).

    Args:
        model: The trained open_clip model (:func:`pretrain`).
        path: The ``.pt`` file; ``<path without extension>.json`` receives
            the record.
        record: Extra fields (command, training time, ...).

    Returns:
        dict: The record written: ``model_cfg``, ``torch``,
        ``zero_shot_accuracy`` and the extra fields.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() for k, v in state.items()})
    out = dict(model_cfg=OVSHAPES_CLIP_CFG)
    out.update(record or {})
    out.update(torch=torch.__version__,
               zero_shot_accuracy=zero_shot_accuracy(model, ovshapes_tokenizer()))
    # Both files go to hidden temporaries first and replace the old ones
    # only when complete; the old record goes before the old weights, so an
    # interrupted run never leaves new weights beside the old run's record
    # (or a truncated file where the previous weights were).
    weights_tmp = temporary_beside(path)
    record_tmp = temporary_beside(record_path(path))
    try:
        torch.save(state, weights_tmp)
        with open(record_tmp, 'w') as f:
            json.dump(out, f, indent=2)
        if osp.exists(record_path(path)):
            os.remove(record_path(path))
        os.replace(weights_tmp, path)
        os.replace(record_tmp, record_path(path))
    finally:
        for tmp in (weights_tmp, record_tmp):
            if osp.exists(tmp):
                os.remove(tmp)
    return out


def record_path(path: str) -> str:
    """The JSON record :func:`save_pretrained` writes next to ``path``."""
    return osp.splitext(path)[0] + '.json'


def check_pretrain_paths(out: str, init: Optional[str] = None, force: bool = False) -> None:
    """Checks the files of a pretraining run before it trains.

    ``out`` receives the weights and :func:`record_path` of it the record:
    they must be two files (an ``out`` ending in ``.json`` would be replaced
    by its own record, the weights lost), and neither may exist without
    ``force``. ``init`` must exist and differ from ``out``.

    Raises:
        ValueError: Naming the path and the fix.
        FileExistsError: ``out`` or its record exists and ``force`` is False.
    """
    record = record_path(out)
    if osp.abspath(record) == osp.abspath(out):
        raise ValueError(f'--out {out}: the record is written to <out without extension>'
                         '.json, the same file, and would replace the weights; name the '
                         f'weights file e.g. {osp.splitext(out)[0]}.pt')
    for path in (out, record):
        if osp.exists(path) and not force:
            what = '' if path == out else f' (the record of --out {out})'
            raise FileExistsError(f'{path}{what} exists; pass --force to overwrite it.')
    if init and not osp.isfile(init):
        raise ValueError(f'--init {init}: no such file; pass a tiny CLIP written by this '
                         'tool.')
    if init and osp.abspath(init) == osp.abspath(out):
        raise ValueError(f'--init and --out are the same file ({out}); write the continued '
                         'model to another path.')


def check_pretrain_settings(steps: int, batch_size: int, threads: int,
                            init: Optional[str] = None) -> None:
    """Refuses settings that would train nothing or fail after the start.

    ``steps`` below 1 without ``init`` would save the random initial model as
    a tiny CLIP (``init`` with 0 steps copies it); a batch of one has no
    negative pair, so CLIP's contrastive loss is 0 and nothing is learnt.

    Raises:
        ValueError: Naming the option and the fix.
    """
    if steps < 0 or (steps == 0 and not init):
        raise ValueError(f'--steps {steps}: give at least 1 training step (0 only with '
                         '--init, which then copies that model); fewer would save an '
                         'untrained model as a tiny CLIP.')
    if batch_size < 2:
        raise ValueError(f'--batch-size {batch_size}: the contrastive loss needs at least '
                         '2 images per batch (with 1 there is no negative pair and the '
                         'loss is 0).')
    if threads < 1:
        raise ValueError(f'--threads {threads}: give at least 1 torch thread.')


def load_record(path: str) -> Optional[dict]:
    """The record of the tiny CLIP saved at ``path``, or None without one."""
    if not osp.isfile(record_path(path)):
        return None
    with open(record_path(path)) as f:
        return json.load(f)
