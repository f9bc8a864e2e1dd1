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
"""
import copy
import json
import math
import os
import os.path as osp
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

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


def sample_batch(rng: np.random.Generator, batch_size: int, tokenizer: Callable,
                 hard_negative_ratio: float = 0.5):
    """Renders a batch: images, caption tokens and hard-negative tokens."""
    scenes = []
    for _ in range(batch_size):
        counts = (1, 1) if rng.random() < 0.4 else (1, 3)
        scenes.append(world.render_scene(rng, num_objects=counts))
    captions = [world.caption(s, rng) for s in scenes]
    negatives = [world.hard_negative(s, rng) for s in scenes
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
             eval_every: int = 0, logger: Callable[[str], None] = print):
    """Trains the tiny CLIP from scratch; returns (model, history).

    Deterministic given ``seed`` (and the same number of torch threads).
    """
    import open_clip
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    cfg = copy.deepcopy(model_cfg or OVSHAPES_CLIP_CFG)
    model = open_clip.CLIP(**cfg)
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
        images, tokens, neg_tokens = sample_batch(rng, batch_size, tokenizer)
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
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(state, path)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    out = dict(model_cfg=OVSHAPES_CLIP_CFG)
    out.update(record or {})
    out.update(torch=torch.__version__,
               zero_shot_accuracy=zero_shot_accuracy(model, ovshapes_tokenizer()))
    with open(osp.splitext(path)[0] + '.json', 'w') as f:
        json.dump(out, f, indent=2)
    return out
