"""Accuracy of bf16 (or fp16) inference against float32 on a test set.

Builds CONFIG twice with CHECKPOINT (loaded strictly), once in float32 and
once with ``test_cfg.inference_dtype`` = ``--dtype`` (and
``test_cfg.precision_mode`` = ``--precision-mode``), runs both on every image
of the config's test dataloader and prints each metric of the config's
evaluator in both precisions, the change, and the share of pixels with the
same label. The measurement lives in :mod:`mmovss.benchmarking.precision`.
Example (an OVShapes world made by ``tools/ovshapes/make_dataset.py``)::

    python tools/analysis_tools/precision_agreement.py \\
        configs/ovshapes/catseg_tiny-clip_1k_ovshapes-seen.py work_dirs/catseg/iter_1000.pth \\
        --dtype bf16 --precision-mode cast \\
        --cfg-options test_dataloader.dataset.data_root=data/ovshapes
"""
import argparse
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

import mmovss  # noqa: E402,F401  (compat + registration before mmseg is used)
from mmovss.benchmarking.precision import (  # noqa: E402
    compare_precisions,
    format_precision_report,
)
from mmovss.runtime import load_config  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='bf16/fp16 inference against float32 on a test set')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='trained checkpoint (loaded strictly)')
    parser.add_argument('--dtype', default='bf16', choices=['bf16', 'fp16'],
                        help='the low precision (fp16 needs CUDA)')
    parser.add_argument('--precision-mode', choices=['cast', 'autocast'], default=None,
                        help="test_cfg.precision_mode of the low-precision run "
                        "(default: the config's, else the segmentor's)")
    parser.add_argument('--max-images', type=int, default=None,
                        help='stop after this many test images')
    parser.add_argument('--json', help='also write the result to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='config overrides, as tools/test.py')
    args = parser.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        parser.error('--max-images must be >= 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint {args.checkpoint!r} does not exist; pass the '
                 f'.pth file tools/train.py wrote (e.g. work_dirs/NAME/iter_1000.pth).')
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        result = compare_precisions(cfg, args.checkpoint, args.dtype,
                                    args.precision_mode, args.max_images)
    except ValueError as err:
        sys.exit(f'error: {err}')
    print(format_precision_report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
