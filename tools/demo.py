"""Segment your own images with your own class names.

Examples::

    python tools/demo.py photo.jpg --vocabulary "cat, kitten; grass; sky" \\
        --model sclip --out results/
    python tools/demo.py photos/ --vocabulary-file classes.txt \\
        --config configs/sclip/sclip_vit-b16_coco_stuff171.py --out results/
    python tools/demo.py photo.jpg -v "sky; grass; sand" -m ovshapes-tiny  # print only
    python tools/demo.py --list-models
    # a released model by name (its checkpoint is downloaded and converted once), or
    # the authors' file itself (recognised by its keys):
    python tools/demo.py photo.jpg -v "cat; grass; sky" -m catseg_vit-b16 --out results/
    python tools/demo.py photo.jpg -v "cat; grass; sky" \
        -c configs/catseg/CONFIG.py --weights /path/to/model_base.pth

Classes are separated by ``;`` and the synonyms of a class by ``,``
(a ``--vocabulary-file`` has one class per line). For every image, ``--out``
receives ``vis/NAME.png`` (colour overlay with a legend of the present
classes), ``pred/NAME.png`` (raw labels: pixel value = class index in the
vocabulary) and ``pred/NAME.json`` (present classes with pixel counts,
areas and scores). Folders are read in sorted order (not recursively) with a
progress bar; other files are skipped with a warning. Inputs are never
overwritten (compared by inode, so a hard link of an input counts as the
input), and a non-empty ``--out`` is refused unless ``--overwrite``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings

# huge pages for CPU tensors >= 2 MiB, read by PyTorch at its first allocation
# (mmovss.benchmarking.memory.HUGE_PAGES_ENV; THP_MEM_ALLOC_ENABLE=0 turns it off)
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmovss  # noqa: E402,F401  (compat + registration before mmseg is used)
from mmovss.apis import (  # noqa: E402
    OpenVocabInferencer,
    OutputWouldOverwriteInput,
    UnreadableImageError,
    list_models,
    resolve_model,
    vocabulary_from_text,
)
from mmovss.apis.inputs import collect_inputs  # noqa: E402
from mmovss.apis.open_vocab_inferencer import output_paths  # noqa: E402
from mmovss.apis.released_weights import prepare_weights  # noqa: E402
from mmovss.apis.vocabulary_text import vocabulary_from_file  # noqa: E402
from mmovss.io import UnsafeOutputError, check_output_dir  # noqa: E402
from mmovss.models.utils.open_clip_weights import WeightFileError  # noqa: E402
from mmovss.runtime import exit_if_device_unusable  # noqa: E402
from mmovss.trained_weights import MissingTrainedWeights, require_trained_weights  # noqa: E402
from mmovss.visualization.legend import check_font_file  # noqa: E402
from mmovss.vocab import Vocabulary  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

#: Config files mmengine reads; anything else (``-c README.md``) is refused
#: before mmengine's ``OSError: Only py/yml/yaml/json type are supported``.
CONFIG_EXTENSIONS = ('.py', '.json', '.yaml', '.yml')

def positive_int(text: str) -> int:
    """argparse type of ``--batch-size``: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number >= 1, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'must be >= 1 (images per forward pass), got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Segment images with a vocabulary you type '
        '(open-vocabulary semantic segmentation).')
    parser.add_argument('inputs', nargs='?',
                        help='an image file or a folder of images')
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument(
        '--vocabulary', '-v',
        help='classes separated by ";", synonyms by ",": '
        '"cat, kitten; grass; sky"')
    vocab.add_argument('--vocabulary-file',
                       help='text file, one class per line (synonyms by ",")')
    model = parser.add_mutually_exclusive_group()
    model.add_argument('--model', '-m',
                       help='model name or alias (see --list-models)')
    model.add_argument('--config', '-c', help='config file')
    parser.add_argument('--checkpoint', '--weights',
                        help='checkpoint file or URL, in mmovss\'s layout or as released by '
                        'the authors (converted once, cached); a released --model brings '
                        'its own; training-free models need none')
    parser.add_argument('--weights-dir',
                        help='folder for downloaded and converted checkpoints (default: '
                        '$MMOVSS_WEIGHTS_DIR, else torch hub\'s checkpoints folder)')
    parser.add_argument('--out', '-o', help='output folder (without it, the classes '
                        'found are printed and nothing is written)')
    parser.add_argument('--allow-random-weights', action='store_true',
                        help='run a trained model without --weights (random learned '
                        'weights; for debugging only)')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into a non-empty --out (inputs are never '
                        'overwritten)')
    parser.add_argument('--device', default=None,
                        help='cpu, cuda, cuda:1, ... (default: available)')
    parser.add_argument('--batch-size', type=positive_int, default=1,
                        help='images per forward pass')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='opacity of the colour mask (0..1)')
    parser.add_argument('--no-legend', action='store_true',
                        help='draw the overlay without the legend')
    parser.add_argument('--legend-font', metavar='PATH', default=None,
                        help='TTF/OTF/TTC font for the legend names (default: DejaVu '
                        'Sans, and for names it cannot draw, e.g. CJK, an installed '
                        'font that can; e.g. a file from `fc-list :lang=zh`)')
    parser.add_argument('--show', action='store_true',
                        help='also show each overlay in a window')
    parser.add_argument('--list-models', action='store_true',
                        help='print the model names and exit')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs (e.g. '
        'model.backbone.pretrained=/path/to/ViT-B-16.pt)')
    args = parser.parse_args(argv)
    if args.list_models:
        return args
    missing = [
        flag for flag, ok in (
            ('IMAGE_OR_FOLDER', args.inputs),
            ('--vocabulary or --vocabulary-file',
             args.vocabulary is not None or args.vocabulary_file),
            ('--model or --config', args.model or args.config)) if not ok
    ]
    if missing:
        parser.error(f'missing {", ".join(missing)}')
    if not 0 <= args.opacity <= 1:
        parser.error(f'--opacity must be in [0, 1], got {args.opacity}')
    exit_if_device_unusable(parser, args.device)
    return args


def load_vocabulary(args) -> Vocabulary:
    """The vocabulary of ``--vocabulary`` or ``--vocabulary-file``."""
    if args.vocabulary_file:  # at least two classes, as for --vocabulary
        return vocabulary_from_file(args.vocabulary_file)
    return vocabulary_from_text(args.vocabulary, source='--vocabulary')


def check_config_file(config: str) -> None:
    """Refuses a file that is no config (``-c README.md``) before mmengine
    reads it."""
    if osp.splitext(config)[1].lower() not in CONFIG_EXTENSIONS:
        raise ValueError(
            f'{config!r} is not a config file: a config must be a .py file such as '
            f'configs/ovshapes/dense-clip_tiny-clip_ovshapes.py (pass it with --config), '
            f'or give a model name with --model (python tools/demo.py --list-models).')


def check_out_parents(out: str) -> None:
    """Refuses an ``--out`` that cannot be created because a path above it is
    a file (``--out photo.png/results``), before the model is built."""
    path = parent = osp.abspath(out)
    while not osp.lexists(parent):
        up = osp.dirname(parent)
        if up == parent:
            return
        parent = up
    if parent != path and not osp.isdir(parent):
        raise UnsafeOutputError(
            f"--out '{out}' cannot be created: '{parent}' is a file, not a folder. "
            f'Choose an output folder whose parents are folders.')


def check_out_dir(args, items) -> None:
    """The shared output guard (mmovss.io): no input overwritten (by inode),
    a non-empty ``--out`` only with ``--overwrite``; ``items`` are the
    collected inputs."""
    check_out_parents(args.out)
    inputs = [i.path for i in items if i.path is not None]
    planned = [p for i in items for p in output_paths(args.out, i.name).values()]
    check_output_dir(args.out, overwrite=args.overwrite, protected_files=inputs,
                     planned=planned)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_models:
        print('\n'.join(list_models()))
        return 0
    try:  # user errors: a clear message, no traceback
        vocabulary = load_vocabulary(args)
        config, weights = resolve_model(args.model or args.config,
                                        args.checkpoint)
        check_config_file(config)
        if args.legend_font is not None:
            args.legend_font = check_font_file(args.legend_font)
        if not osp.exists(args.inputs):
            raise FileNotFoundError(
                f'Input {args.inputs!r} does not exist (pass an image file '
                f'or a folder of images).')
        # before the model is built: an empty folder is an error, and the
        # files skipped in a folder are reported (once: see below)
        items = collect_inputs(args.inputs)
        if args.out:
            check_out_dir(args, items)
        if weights is not None:  # download, recognise, convert once (cached)
            weights = prepare_weights(weights, cache_dir=args.weights_dir).path
        inferencer = OpenVocabInferencer(
            config,
            weights=weights,
            device=args.device,
            cfg_options=args.cfg_options,
            show_progress=osp.isdir(args.inputs),
            weights_dir=args.weights_dir,
            # checked just below, with the message that names the flags
            allow_random_weights=True)
    except (ValueError, FileNotFoundError, WeightFileError) as e:
        # WeightFileError: CLIP / VFM weights that cannot be read, fit or be downloaded
        print(f'error: {e}', file=sys.stderr)
        return 2
    try:  # a trained model needs its weights (mmovss.trained_weights)
        loaded = inferencer.weights  # --weights, a model name's, or the config's load_from
        require_trained_weights(inferencer.model, loaded.path if loaded else None,
                                args.allow_random_weights, args.model or args.config)
    except MissingTrainedWeights as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    count = 0
    try:
        with warnings.catch_warnings():  # said above, when the inputs were collected
            warnings.filterwarnings('ignore', message=r'Skipped \d+ file\(s\) of ',
                                    category=UserWarning)
            try:  # the arguments are checked here (e.g. --show without a display)
                results = inferencer.stream(
                    args.inputs, vocabulary, batch_size=args.batch_size,
                    out_dir=args.out or '', show=args.show, opacity=args.opacity,
                    with_legend=not args.no_legend, legend_font=args.legend_font)
            except ValueError as e:
                print(f'error: {e}', file=sys.stderr)
                return 2
            for result in results:
                count += 1
                summary = inferencer.summary(result, vocabulary)
                found = ', '.join(f'{c["name"]} {100 * c["area"]:.1f}%'
                                  for c in summary['classes'])
                print(f'{result["name"]}: {found}')
    except (UnreadableImageError, OutputWouldOverwriteInput,
            UnsafeOutputError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(json.dumps(dict(images=count, out=osp.abspath(args.out) if args.out else None)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
