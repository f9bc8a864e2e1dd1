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
from mmovss.evaluation.side_by_side import (  # noqa: E402
    run_side_by_side_tool,
    side_by_side_parser,
)


def build_parser():
    parser = side_by_side_parser('bf16/fp16 inference against float32 on a test set')
    parser.add_argument('--dtype', default='bf16', choices=['bf16', 'fp16'],
                        help='the low precision (fp16 needs CUDA)')
    parser.add_argument('--precision-mode', choices=['cast', 'autocast'], default=None,
                        help="test_cfg.precision_mode of the low-precision run "
                        "(default: the config's, else the segmentor's)")
    return parser


def main(argv=None):
    return run_side_by_side_tool(
        build_parser(), argv,
        lambda cfg, args: compare_precisions(cfg, args.checkpoint, args.dtype,
                                             args.precision_mode, args.max_images),
        format_precision_report)


if __name__ == '__main__':
    main()
