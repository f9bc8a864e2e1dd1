"""Which stage limits a mask-classification segmentor: oracle ablations.

Runs CONFIG with CHECKPOINT (loaded strictly) on the config's test set three
ways and prints each metric of the config's evaluator per run: ``model`` (as
configured), ``oracle_labels`` (the model's own proposals, each named by the
ground-truth class covering most of it: the ceiling of the masks) and
``oracle_masks`` (ground-truth masks classified by the method's own mask
classifier: ZegFormer's and OVSeg's CLIP crops, FC-CLIP's mask pooling,
OpenSeg's region embeddings; the ceiling of that classifier).
The measurement lives in :mod:`mmovss.evaluation.stage_oracles`. Example (an
OVShapes world made by ``tools/ovshapes/make_dataset.py``)::

    python tools/analysis_tools/stage_oracles.py \\
        configs/ovshapes/ovseg_tiny-clip_1k_ovshapes-seen.py work_dirs/ovseg/iter_1000.pth \\
        --cfg-options test_dataloader.dataset.data_root=data/ovshapes
"""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

import mmovss  # noqa: E402,F401  (compat + registration before mmseg is used)
from mmovss.evaluation.side_by_side import (  # noqa: E402
    run_side_by_side_tool,
    side_by_side_parser,
)
from mmovss.evaluation.stage_oracles import (  # noqa: E402
    format_oracle_report,
    stage_oracles,
)


def main(argv=None):
    return run_side_by_side_tool(
        side_by_side_parser('oracle ablations of a mask-classification segmentor'), argv,
        lambda cfg, args: stage_oracles(cfg, args.checkpoint, args.max_images),
        format_oracle_report)


if __name__ == '__main__':
    main()
