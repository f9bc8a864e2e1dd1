"""Build OVSeg's region training data (Liang et al., CVPR 2023, Sec. 3.2).

Mask proposals of a trained mask model (an mmovss ZegFormer/OVSeg/OpenSeg
config and checkpoint), cropped and pseudo-labelled with the caption noun
most similar in CLIP's space
(:mod:`mmovss.datasets.ovseg_region_builder`). Writes ``OUT/crops/*.png``,
``OUT/masks/*.png`` (1 inside the region) and ``OUT/regions.json``, the input
of ``RegionCropDataset``::

    python tools/ovseg/build_region_data.py CONFIG CHECKPOINT \\
        --captions data/coco/annotations/captions_train2017.json \\
        --images data/coco/train2017 --out data/ovseg_regions

OVShapes keeps all splits in one caption file: add ``--file-prefix train/``
so that validation images never become training regions. A caption noun
that is an unseen class name of the world (``split.json`` beside
``--captions``) is refused before anything is written, unless
``--allow-unseen-nouns`` (an ablation).
"""
import argparse
import os.path as osp
import sys
from typing import List

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

import torch  # noqa: E402

import mmovss  # noqa: E402,F401
from mmovss.datasets.ovseg_region_builder import (  # noqa: E402
    build_region_data,
    check_region_settings,
    world_unseen_names,
)
from mmovss.io import check_output_dir  # noqa: E402
from mmovss.runtime import exit_if_device_unusable, load_model_checkpoint_strictly  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='mask model config (mmovss)')
    parser.add_argument('checkpoint', help='mask model checkpoint')
    parser.add_argument('--captions', required=True,
                        help='COCO-Captions-style JSON')
    parser.add_argument('--images', required=True, help='image folder')
    parser.add_argument('--out', required=True,
                        help='output folder (new or empty; never inside --images)')
    parser.add_argument('--overwrite', action='store_true',
                        help='write into a non-empty --out')
    parser.add_argument('--file-prefix', default=None,
                        help="keep only images whose file name starts with it "
                        "(e.g. 'train/' for OVShapes' captions.json, whose one "
                        'file holds every split)')
    parser.add_argument('--word-vocabulary', default=None,
                        help='phrase file restricting the nouns (optional)')
    parser.add_argument('--max-regions', type=int, default=20,
                        help='largest proposals kept per image')
    parser.add_argument('--min-area', type=float, default=0.01,
                        help='smallest proposal area (fraction of image)')
    parser.add_argument('--allow-unseen-nouns', action='store_true',
                        help='let caption nouns that are unseen class names of the '
                        "world (split.json beside --captions) label regions (an ablation; "
                        'by default refused)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available()
                        else 'cpu')
    args = parser.parse_args(argv)
    try:
        check_region_settings(args.max_regions, args.min_area)
    except ValueError as err:
        parser.error(str(err))
    exit_if_device_unusable(parser, args.device)  # before the model is built
    return args


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    # Before any work: --out must not replace the images or the captions.
    check_output_dir(args.out, overwrite=args.overwrite, protected_dirs=[args.images],
                     protected_files=[args.captions], flag='--out')
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    # CRC-checked, weights_only, every key must match (as tools/test.py)
    load_model_checkpoint_strictly(model, args.checkpoint)
    model = model.to(args.device).eval()
    regions = build_region_data(
        model, args.captions, args.images, args.out,
        file_prefix=args.file_prefix, word_vocabulary=args.word_vocabulary,
        max_regions=args.max_regions, min_area=args.min_area,
        forbidden_nouns=() if args.allow_unseen_nouns else world_unseen_names(args.captions))
    nouns = {r['noun'] for r in regions}
    print(f'{len(regions)} regions, {len(nouns)} nouns -> {args.out}')
    return regions


if __name__ == '__main__':
    main()
