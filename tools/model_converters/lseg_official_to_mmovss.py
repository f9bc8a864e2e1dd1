"""Convert an official LSeg checkpoint (github.com/isl-org/lang-seg) to mmovss.

Thin wrapper of :mod:`mmovss.converters.lseg_official`::

    python tools/model_converters/lseg_official_to_mmovss.py demo_e200.ckpt lseg_demo.pth
    python tools/test.py \
        configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py \
        lseg_demo.pth

The file is read weights-only (no code in it runs): the Python objects
PyTorch-Lightning pickles next to the weights (callback classes) are replaced
by inert stand-ins (:func:`mmovss.converters.lseg_official.load_lightning_checkpoint`).
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.lseg_official import convert_checkpoint, load_lightning_checkpoint  # noqa: E402
from mmovss.io import check_planned_outputs  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='official LSeg checkpoint (e.g. demo_e200.ckpt)')
    parser.add_argument('dst', help='output mmovss checkpoint')
    args = parser.parse_args(argv)
    check_planned_outputs([args.dst], [args.src], flag='dst')
    state, meta = convert_checkpoint(load_lightning_checkpoint(args.src))
    torch.save(dict(state_dict=state, meta=meta), args.dst)
    print(f"readout: {meta['readout_type']}; fixed logit scale {meta['logit_scale']:.4f}")
    print(f'saved {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
