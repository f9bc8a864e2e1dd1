"""Pretrain the OVShapes tiny CLIP (contrastive, on CPU) and save it.

    python tools/ovshapes/pretrain_clip.py --out mmovss/assets/ovshapes_tiny_clip.pt \
        --steps 1000 --batch-size 128 --seed 0 --threads 1 --eval-every 0 --force

The default data recipe is ``--recipe crowded`` (issue #22; its knobs:
``--num-objects``, ``--radius``, ``--min-pixels``, ``--zoom-prob``, ``--crop``,
``--[no-]stuff-synonyms``); ``--recipe single`` gives the first tiny CLIP's
data (its record: ``--recipe single --steps 1000 --batch-size 128 --seed 0``).

Writes the open_clip state dict (tensors stored as float16, as OpenAI ships
CLIP; loaders cast to float32) and, next to it, ``<out>.json`` with the model
config, the exact command, the training time and the zero-shot accuracy on
held-out single-object images (seen / unseen classes).
"""
import argparse
import json
import os.path as osp
import shlex
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import torch  # noqa: E402

from mmovss.ovshapes.pretrain import (  # noqa: E402
    RECIPES,
    check_pretrain_paths,
    check_pretrain_settings,
    load_record,
    ovshapes_tokenizer,
    pretrain,
    save_pretrained,
    zero_shot_accuracy,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description='Pretrain the OVShapes tiny CLIP')
    parser.add_argument('--out', required=True, help='output checkpoint (.pt)')
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--warmup', type=int, default=200, help='linear warm-up steps')
    parser.add_argument('--init', help='continue from this tiny CLIP (a file written by this '
                        'tool) instead of training from scratch')
    parser.add_argument('--eval-every', type=int, default=500,
                        help='log zero-shot accuracy every N steps (0: never)')
    parser.add_argument('--threads', type=int, default=2, help='torch threads (determinism)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out')
    parser.add_argument('--recipe', choices=sorted(RECIPES), default='crowded',
                        help="pretraining data (mmovss.ovshapes.pretrain.RECIPES): 'crowded' "
                        "(default) or 'single' (the first tiny CLIP's scenes)")
    parser.add_argument('--num-objects', type=int, nargs=2, metavar=('MIN', 'MAX'),
                        help="'crowded': objects drawn per scene (before occlusion)")
    parser.add_argument('--radius', type=float, nargs=2, metavar=('MIN', 'MAX'),
                        help="'crowded': object radius range in pixels")
    parser.add_argument('--min-pixels', type=int,
                        help="'crowded': a class is in the image (and caption) with at least "
                        'this many pixels')
    parser.add_argument('--zoom-prob', type=float,
                        help="'crowded': probability of a zoomed random crop")
    parser.add_argument('--crop', type=int, nargs=2, metavar=('MIN', 'MAX'),
                        help="'crowded': side range of the zoomed crops in pixels")
    parser.add_argument('--stuff-synonyms', action=argparse.BooleanOptionalAction, default=None,
                        help="'crowded': name background classes by several phrases, the bare "
                        'class name included')
    parser.add_argument('--single-fraction', type=float,
                        help="'crowded': fraction of every batch drawn as 'single' scenes and "
                        'captions (the first tiny CLIP\'s)')
    args = parser.parse_args(argv)
    try:
        check_pretrain_settings(args.steps, args.batch_size, args.threads, args.init)
    except ValueError as err:
        parser.error(str(err))
    try:
        check_pretrain_paths(args.out, args.init, args.force)
    except (ValueError, FileExistsError) as err:
        sys.exit(str(err))
    recipe = dict(RECIPES[args.recipe])
    for key in ('num_objects', 'radius', 'min_pixels', 'zoom_prob', 'crop', 'stuff_synonyms',
                'single_fraction'):
        value = getattr(args, key)
        if value is not None:
            if args.recipe == 'single':
                parser.error(f"--{key.replace('_', '-')} only applies to --recipe crowded")
            recipe[key] = tuple(value) if isinstance(value, list) else value
    torch.set_num_threads(args.threads)
    start = time.time()
    model, history = pretrain(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                              seed=args.seed, eval_every=args.eval_every,
                              recipe=recipe, warmup=args.warmup, init=args.init)
    train_seconds = time.time() - start
    print(f'zero-shot accuracy: {zero_shot_accuracy(model, ovshapes_tokenizer())}')
    extra = dict(
        command='python ' + ' '.join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]]),
        train_seconds=round(train_seconds, 1), threads=args.threads,
        recipe=dict(name=args.recipe, **recipe),
        final_loss=history[-1]['loss'] if history else None)
    if args.init:  # a continued run carries the record of the run it continues
        extra.update(init=args.init, init_record=load_record(args.init))
    # the accuracy recorded is that of the float16-rounded weights actually shipped
    record = save_pretrained(model, args.out, extra)
    print(json.dumps(record, indent=2))


if __name__ == '__main__':
    main()
