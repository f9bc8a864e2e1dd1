"""How robust is a model to the names of its classes? (vocabulary report)

Evaluates one model on one dataset under name variants (first name only vs
all synonyms, each prompt-template set, with distractor classes, background
ignored or named "background") and reports per-class IoU and its spread, the
worst-case mIoU and the names that helped most, as a table and a plot.

Examples::

    python tools/analysis_tools/vocabulary_report.py \\
        configs/ovshapes/dense-clip_tiny-clip_ovshapes.py --out work_dirs/vocab_report
    python tools/analysis_tools/vocabulary_report.py CONFIG CHECKPOINT --benchmark ade20k_150
    python tools/analysis_tools/vocabulary_report.py configs/custom/my_data_METHOD.py CKPT \\
        --names my_names.txt --background sky grass --distractors "tree; car; person"

See mmovss/evaluation/vocabulary_report.py for the definitions.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmovss  # noqa: E402,F401  (compat + registration)
from mmovss.evaluation.vocabulary_report import format_report, plot_report, run_vocabulary_report  # noqa: E402
from mmovss.runtime import exit_if_device_unusable, load_config, merge_cfg_options, run_tool  # noqa: E402
from mmovss.vocab import TEMPLATE_SETS, Vocabulary  # noqa: E402

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Per-class IoU of one model under name '
                                     'variants of its vocabulary')
    parser.add_argument('config', help='config (any method; a custom dataset config)')
    parser.add_argument('checkpoint', nargs='?', help='trained weights (trained models)')
    parser.add_argument('--benchmark', help='evaluate on this benchmark (mmovss.protocols)')
    parser.add_argument('--names', help='text file: names for the dataset classes, one line '
                        'per class in label order, synonyms separated by commas')
    parser.add_argument('--templates', nargs='*', default=list(TEMPLATE_SETS),
                        help=f'template sets to compare (default: {" ".join(TEMPLATE_SETS)})')
    parser.add_argument('--distractors', help='extra class names, ";"-separated, or a file '
                        '(default: 20 COCO-Stuff names absent from the data; "" for none)')
    parser.add_argument('--background', nargs='*', default=None, metavar='NAME',
                        help='background classes (default: classes named background, other, '
                        '...; give none to skip)')
    parser.add_argument('--max-images', type=int, help='evaluate the first N images only')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='folder for report.md, report.json and report.png '
                        '(new or empty: checked before the run)')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into a non-empty --out folder')
    parser.add_argument('--allow-random-weights', action='store_true',
                        help='a trained model without checkpoint (debugging only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    args = parser.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        parser.error('--max-images must be >= 1')
    exit_if_device_unusable(parser, args.device)  # before the model and the data are built
    return args


def _distractors(text):
    if text is None:
        return None
    if osp.isfile(text):
        with open(text, encoding='utf-8-sig') as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.startswith('#')]
    return [t.strip() for t in text.split(';') if t.strip()]


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.benchmark:  # as tools/test.py: the benchmark's protocol, then --cfg-options
        from mmovss.protocols import apply_benchmark
        cfg = apply_benchmark(cfg, args.benchmark)
    if args.cfg_options:
        merge_cfg_options(cfg, args.cfg_options)
    if args.out:  # before the run: never a dataset folder, a non-empty one only with --overwrite
        from mmovss.io import UnsafeOutputError, check_output_dir
        from mmovss.runtime import config_dataset_folders
        try:
            check_output_dir(args.out, overwrite=args.overwrite,
                             protected_dirs=config_dataset_folders(cfg),
                             protected_files=[args.config, args.checkpoint, args.names],
                             planned=[osp.join(args.out, f'report.{ext}')
                                      for ext in ('md', 'json', 'png')])
        except UnsafeOutputError as err:
            sys.exit(f'error: {err}')
    names = Vocabulary.from_file(args.names) if args.names else None
    report = run_vocabulary_report(
        cfg, args.checkpoint, names=names, template_sets=args.templates,
        distractors=_distractors(args.distractors), background=args.background,
        max_images=args.max_images, device=args.device,
        allow_random_weights=args.allow_random_weights)
    text = format_report(report)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(osp.join(args.out, 'report.md'), 'w', encoding='utf-8') as f:
            f.write(text)
        with open(osp.join(args.out, 'report.json'), 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1)
        plot_report(report, osp.join(args.out, 'report.png'))
        print(f'wrote {args.out}/report.md, report.json, report.png')
    return 0


if __name__ == '__main__':
    # user errors (no or a foreign checkpoint, no data, ...): one line, as tools/test.py
    run_tool(main)
