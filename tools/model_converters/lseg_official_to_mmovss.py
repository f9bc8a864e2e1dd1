"""Convert an official LSeg checkpoint (github.com/isl-org/lang-seg) to mmovss.

Thin wrapper of :mod:`mmovss.converters.lseg_official` (through
:func:`mmovss.converters.files.converter_main`)::

    python tools/model_converters/lseg_official_to_mmovss.py demo_e200.ckpt lseg_demo.pth
    python tools/test.py \
        configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py \
        lseg_demo.pth

The file is read weights-only (no code in it runs): the Python objects
PyTorch-Lightning pickles next to the weights (callback classes) are replaced
by inert stand-ins (:func:`mmovss.converters.files.read_checkpoint`).
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import converter_main  # noqa: E402


def main(argv=None):
    return converter_main('lseg_official', argv, __doc__.split('\n')[0],
                          src_help='official LSeg checkpoint (e.g. demo_e200.ckpt)')


if __name__ == '__main__':
    main()
