"""Convert an OVSeg checkpoint as released by its authors to mmovss keys.

Thin wrapper of :mod:`mmovss.converters.ovseg_official` (every key mapped or
dropped with its reason; unknown or missing keys are refused)::

    python tools/model_converters/ovseg_official_to_mmovss.py \
        ovseg_swinbase_vitL14_ft_mpt.pth ovseg_swinb_vitl14.pth

then ``tools/test.py configs/ovseg/ovseg-official_*.py ovseg_swinb_vitl14.pth
--benchmark KEY`` (the config of the same backbone, recorded as ``meta.backbone``;
``--benchmark`` sets the released per-benchmark ensemble weight).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import converter_main  # noqa: E402


def main(argv=None):
    return converter_main('ovseg_official', argv, __doc__.split('\n')[0],
                          src_help='official checkpoint (ovseg_*.pth / .pt)')


if __name__ == '__main__':
    main()
