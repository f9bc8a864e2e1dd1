"""Convert a CAT-Seg checkpoint as released by its authors to mmovss's layout.

Thin wrapper of :mod:`mmovss.converters.catseg_official` (through
:func:`mmovss.converters.files.converter_main`)::

    python tools/model_converters/catseg_official_to_mmovss.py model_base.pth catseg_vit-b16.pth
    python tools/test.py configs/catseg/catseg-official_vit-b16_80k_coco-stuff171-384x384.py \
        catseg_vit-b16.pth --benchmark ade20k_150
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import converter_main  # noqa: E402


def main(argv=None):
    return converter_main('catseg_official', argv, __doc__.split('\n')[0],
                          src_help='released checkpoint (model_base.pth / model_large.pth)')


if __name__ == '__main__':
    main()
