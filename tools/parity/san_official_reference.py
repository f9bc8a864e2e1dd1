"""Runs the official SAN (github.com/MendelXu/SAN) on CPU with tiny random
weights and writes an official-parity fixture (mmovss/testing/official_parity).

    python tools/parity/san_official_reference.py --official-repo /path/to/SAN \\
        --detectron2 /path/to/detectron2 --seed 0 \\
        --out tests/data/official_parity/san_official/seed0

The official model is built by the clone's own ``SAN.from_config`` from its
``configs/san_clip_vit_large_res4_coco.yaml`` (0.7x CLIP input, FUSION_MAP
layout) with tiny widths put into the config (the builders are shared with the
side-by-side timing: :mod:`mmovss.benchmarking.official_builders`). Nothing of
the clone is edited; at run time:

* ``wandb`` (imported by ``san.utils``) is stubbed, and the ``san`` package
  is registered without running ``san/__init__.py`` (dataset registration
  and test-time augmentation are not used);
* ``open_clip.create_model_and_transforms`` (called by ``SAN.from_config``)
  returns a tiny open_clip 3.x ``CLIP`` (QuickGELU, as OpenAI's) whose
  attention modules are switched to sequence-first
  (``nn.MultiheadAttention.batch_first = False``): the SAN code pins open_clip
  2.16, whose blocks are sequence-first, and calls them directly; the 3.x
  ``VisionTransformer`` lacks three attributes the code reads
  (``input_patchnorm``, ``patchnorm_pre_ln``, ``global_average_pool``), set
  to their 2.16 values (False);
* timm gets the side-adapter ViT under a new name (``vit_w16n2d4_patch16``),
  built as the clone's ``side_adapter/timm_wrapper.py`` builds
  ``vit_w240n6d8_patch16``, with tiny sizes.

All weights are random (seeded), perturbed so that no two LayerNorms are
equal, and rounded to float16 values (the fixture stores them as float16,
exactly). The text token embedding (49408 rows) is stored as overlapping rows
of one random vector (row i = v[i:i + width]) to keep the file small.
"""
import argparse
import json
import os
import os.path as osp
import sys

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmovss.benchmarking.official_builders import (  # noqa: E402
    import_san,
    randomise_san,
    register_san_side_vit,
    san_cfg,
    san_open_clip,
)
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.official_code import seed_everything  # noqa: E402
from mmovss.testing.official_parity.san_official import CLASS_NAMES, TINY  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--official-repo', required=True, help='clone of MendelXu/SAN')
    p.add_argument('--detectron2', default=None, help='detectron2 source clone')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    p.add_argument('--official-commit', default=None,
                   help='commit of the clone, recorded in meta.json (default: its git HEAD)')
    p.add_argument('--image-size', type=int, nargs=2, default=(56, 88), metavar=('H', 'W'))
    return p.parse_args()


def random_image(h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    """A (3, h, w) uint8 image of flat random-colour 16 x 16 cells plus noise
    (regions that differ, so that the queries' masks and classes differ)."""
    cells = torch.rand(3, -(-h // 16), -(-w // 16), generator=gen) * 200
    image = cells.repeat_interleave(16, 1).repeat_interleave(16, 2)[:, :h, :w]
    image = image + torch.rand(3, h, w, generator=gen) * 55
    return image.to(torch.uint8)


def run_image(model, image: torch.Tensor, prefix: str):
    """Runs the official model on one (3, H, W) uint8 image; its stages."""
    h, w = image.shape[-2:]
    store = {}
    net = model.side_adapter_network
    handle = net.register_forward_pre_hook(lambda m, a: store.update(adapter_in=a))
    with torch.no_grad():
        out = model([dict(image=image.float(), height=h, width=w, vocabulary=CLASS_NAMES)])
        handle.remove()
        semantic = out[0]['sem_seg']
        padded, clip_feats = store['adapter_in']
        stages = {}
        for src, _ in TINY['fusion_map']:
            stages[f'clip/layer_{src}'] = clip_feats[src].numpy()
        last = TINY['start_block']
        stages['clip/cls_token'] = clip_feats[f'{last}_cls_token'][0].numpy()
        classifier = model.ov_classifier.get_classifier_by_vocabulary(CLASS_NAMES)
        stages['text/classifier'] = classifier.numpy()
        scale = model.ov_classifier.logit_scale.exp()
        features = net.forward_features(padded, clip_feats)
        for idx, feature in zip(TINY['deep_supervision_idxs'], features):
            masks, biases = net.mask_decoder(**feature)
            stages[f'side_adapter/masks_{idx}'] = masks.numpy()
            stages[f'side_adapter/attn_bias_{idx}'] = biases[0].numpy()
            rec = model.clip_rec_head
            grid = tuple(clip_feats[last].shape[-2:])
            formatted = rec._build_attn_biases(biases, target_shape=grid)[0]
            q, n = masks.shape[1], masks.shape[0]
            pooled = formatted[:, :q, -grid[0] * grid[1]:].reshape(n, -1, q, grid[0], grid[1])
            stages[f'rec/attn_bias_pooled_{idx}'] = pooled.numpy()
            embeds = rec(clip_feats, biases, normalize=True)
            stages[f'rec/mask_embeds_{idx}'] = embeds.numpy()
            stages[f'class_logits_{idx}'] = torch.einsum(
                'bqc,nc->bqn', embeds, scale * classifier).numpy()
        stages['semantic'] = semantic.numpy()
        stages['labels'] = semantic.argmax(0).numpy().astype(np.int64)
    return {prefix + k: v for k, v in stages.items()}, padded


def run_resized(model, image: torch.Tensor, original_hw, prefix: str):
    """The official output for a network input (3, h, w) of an image whose
    original size is ``original_hw`` (the dataset dict's ``height`` /
    ``width``): ``sem_seg_postprocess`` resizes the mask logits to it before
    ``semantic_inference``. Only the final stages (the rest is the same code
    as :func:`run_image`)."""
    h0, w0 = original_hw
    with torch.no_grad():
        out = model([dict(image=image.float(), height=h0, width=w0, vocabulary=CLASS_NAMES)])
    semantic = out[0]['sem_seg']
    assert tuple(semantic.shape[-2:]) == (h0, w0), semantic.shape
    return {prefix + 'semantic': semantic.numpy(),
            prefix + 'labels': semantic.argmax(0).numpy().astype(np.int64)}


def main():
    args = parse_args()
    san_module, add_san_config = import_san(args.official_repo, args.detectron2)
    seed_everything(args.seed)
    vit_name = register_san_side_vit(TINY['side_adapter'])
    cfg = san_cfg(args.official_repo, add_san_config, vit_name, TINY, len(CLASS_NAMES))
    # the token embedding: overlapping rows of one vector (fixture size)
    clip_cfg = TINY['clip_cfg']
    vocab, width = clip_cfg['text_cfg']['vocab_size'], clip_cfg['text_cfg']['width']
    token_base = torch.randn(vocab + width).half()  # unit scale: names differ clearly
    san_module.open_clip.create_model_and_transforms = \
        lambda *a, **k: san_open_clip(TINY['clip_cfg'])
    model = san_module.SAN(cfg).eval()
    randomise_san(model, args.seed)
    with torch.no_grad():
        emb = model.ov_classifier.token_embedding.weight
        emb.copy_(token_base.float().as_strided((vocab, width), (1, 1)))

    h, w = args.image_size
    gen = torch.Generator().manual_seed(args.seed + 2)
    image = random_image(h, w, gen)
    # a second image whose side-adapter grid has as many patches as the
    # pretraining grid but another shape (the official code then skips the
    # position-embedding resize): (g/2, 2g) patches, unpadded size not a
    # multiple of the padding
    side = TINY['side_adapter']
    g, p = side['pretrain_grid'], side['patch_size']
    tokens_hw = (g // 2 * p - 2, 2 * g * p - 8)
    image_tokens = random_image(*tokens_hw, gen)
    # a third image fed at another size than its original one (the test
    # resize): the official code resizes the mask logits to the original
    # size before the sigmoid (SEM_SEG_POSTPROCESS_BEFORE_INFERENCE); padded
    # (32 x 50 -> 32 x 64) and enlarged to 45 x 71
    resized_hw, original_hw = (32, 50), (45, 71)
    image_resized = random_image(*resized_hw, gen)
    stages, padded = run_image(model, image, '')
    tokens_stages, tokens_padded = run_image(model, image_tokens, 'tokens_grid/')
    stages.update(tokens_stages)
    stages.update(run_resized(model, image_resized, original_hw, 'resized/'))

    state = {k: (v.half() if v.is_floating_point() and k != 'ov_classifier.logit_scale' else v)
             for k, v in model.state_dict().items()}
    commit = args.official_commit
    git_dir = osp.join(args.official_repo, '.git')
    if commit is None and osp.exists(git_dir):
        commit = os.popen(f'git --git-dir={git_dir} rev-parse HEAD 2>/dev/null').read().strip()
    meta = dict(
        method='san_official', seed=args.seed, image_size=[h, w], class_names=CLASS_NAMES,
        official_commit=commit or 'unknown', tiny=TINY,
        official_config=dict(
            config='configs/san_clip_vit_large_res4_coco.yaml',
            CLIP_RESOLUTION=cfg.MODEL.SAN.CLIP_RESOLUTION,
            SIZE_DIVISIBILITY=cfg.MODEL.SAN.SIZE_DIVISIBILITY,
            CLIP_TEMPLATE_SET=cfg.MODEL.SAN.CLIP_TEMPLATE_SET,
            FEATURE_LAST_LAYER_IDX=cfg.MODEL.SAN.FEATURE_LAST_LAYER_IDX,
            FUSION_MAP=list(cfg.MODEL.SIDE_ADAPTER.FUSION_MAP),
            SOS_TOKEN_FORMAT=cfg.MODEL.SAN.SOS_TOKEN_FORMAT,
            REC_DOWNSAMPLE_METHOD=cfg.MODEL.SAN.REC_DOWNSAMPLE_METHOD,
            SEM_SEG_POSTPROCESS_BEFORE_INFERENCE=cfg.MODEL.SAN.
            SEM_SEG_POSTPROCESS_BEFORE_INFERENCE),
        logit_scale=float(model.ov_classifier.logit_scale),
        padded_size=list(padded.shape[-2:]),
        tokens_grid_image_size=list(tokens_hw),
        tokens_grid_padded_size=list(tokens_padded.shape[-2:]),
        resized_image_original_size=list(original_hw),
        command=' '.join(['python', 'tools/parity/san_official_reference.py'] + sys.argv[1:]))
    inputs = dict(image=image.numpy(), tokens_grid_image=image_tokens.numpy(),
                  resized_image=image_resized.numpy())
    write_fixture(args.out, meta, state, inputs, stages)
    # the token embedding as overlapping rows of its base vector (write_fixture
    # stores tensors densely; torch.save keeps a view's storage and strides)
    key = 'ov_classifier.token_embedding.weight'
    state[key] = token_base.as_strided((vocab, width), (1, 1))
    torch.save(state, osp.join(args.out, 'state_dict.pth'))
    print(json.dumps({k: list(v.shape) for k, v in stages.items()}))


if __name__ == '__main__':
    main()
