"""Convert an official FC-CLIP checkpoint (github.com/bytedance/fc-clip) to mmovss.

Thin wrapper of :mod:`mmovss.converters.fcclip_official` (through
:func:`mmovss.converters.files.converter_main`)::

    python tools/model_converters/fcclip_official_to_mmovss.py fcclip_cocopan.pth out.pth
    python tools/test.py \
        configs/fcclip/fcclip-official_convnext-l_368k_coco-panoptic-1024x1024.py out.pth
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import converter_main  # noqa: E402


def main(argv=None):
    return converter_main('fcclip_official', argv, __doc__.split('\n')[0],
                          src_help='official checkpoint (.pth, detectron2 {"model": ...})')


if __name__ == '__main__':
    main()
