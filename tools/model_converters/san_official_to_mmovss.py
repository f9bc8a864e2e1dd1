"""Convert a SAN checkpoint as released by its authors to mmovss's layout.

Thin wrapper of :mod:`mmovss.converters.san_official` (every official key is
mapped or dropped with a stated reason; unknown or missing keys are refused)::

    python tools/model_converters/san_official_to_mmovss.py san_vit_b_16.pth san_vit-b16.pth
    python tools/test.py configs/san/san-official_vit-b16_60k_coco-stuff171-640x640.py \
        san_vit-b16.pth --benchmark ade20k_150

(``tools/test.py`` and the inferencer also take the released file itself, or
the model name ``san_vit-b16``, and convert it once.)
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import converter_main  # noqa: E402


def main(argv=None):
    return converter_main('san_official', argv, __doc__.split('\n')[0],
                          src_help='released checkpoint (san_vit_b_16.pth / san_vit_large_14.pth)')


if __name__ == '__main__':
    main()
