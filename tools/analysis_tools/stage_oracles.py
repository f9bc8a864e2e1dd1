"""Which stage limits a mask-classification segmentor: oracle ablations.

Runs CONFIG with CHECKPOINT (loaded strictly) on the config's test set three
ways and prints each metric of the config's evaluator per run: ``model`` (as
configured), ``oracle_labels`` (the model's own proposals, each named by the
ground-truth class covering most of it: the ceiling of the masks) and
``oracle_masks`` (ground-truth masks classified by the method's CLIP region
classifier: the ceiling of the CLIP crop classifier; ZegFormer and OVSeg).
The measurement lives in :mod:`mmovss.evaluation.stage_oracles`. Example (an
OVShapes world made by ``tools/ovshapes/make_dataset.py``)::

    python tools/analysis_tools/stage_oracles.py \\
        configs/ovshapes/ovseg_tiny-clip_1k_ovshapes-seen.py work_dirs/ovseg/iter_1000.pth \\
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
from mmovss.evaluation.stage_oracles import (  # noqa: E402
    format_oracle_report,
    stage_oracles,
)
from mmovss.runtime import load_config  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='oracle ablations of a mask-classification segmentor')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='trained checkpoint (loaded strictly)')
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
        result = stage_oracles(cfg, args.checkpoint, args.max_images)
    except ValueError as err:
        sys.exit(f'error: {err}')
    print(format_oracle_report(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
