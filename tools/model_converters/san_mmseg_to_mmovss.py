"""Convert SAN checkpoints between mmseg 1.x and mmovss layouts (both ways).

Thin wrapper of :mod:`mmovss.converters.san_mmseg`::

    python tools/model_converters/san_mmseg_to_mmovss.py mmseg.pth ours.pth
    python tools/model_converters/san_mmseg_to_mmovss.py ours.pth mmseg.pth --to mmseg
"""
import argparse
import math
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import save_atomically  # noqa: E402
from mmovss.converters.san_mmseg import mmovss_to_mmseg, mmseg_to_mmovss  # noqa: E402
from mmovss.io import UnsafeOutputError, check_output_file  # noqa: E402
from mmovss.runtime import load_checkpoint_safely  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='input checkpoint')
    parser.add_argument('dst', help='output checkpoint (a new file)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    parser.add_argument('--to', choices=['mmovss', 'mmseg'], default='mmovss')
    parser.add_argument('--logit-scale', type=float, default=None,
                        help='log temperature for --to mmseg')
    args = parser.parse_args(argv)
    try:  # never the source (same inode); an existing file only with --overwrite
        check_output_file(args.dst, overwrite=args.overwrite, protected_files=[args.src],
                          flag='DST')
    except UnsafeOutputError as err:
        sys.exit(f'error: {err}')
    # weights_only loading (CRC-checked): a crafted pickle cannot run code.
    try:
        ckpt = load_checkpoint_safely(args.src)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'error: {err}')
    if not isinstance(ckpt, dict):
        sys.exit(f'error: {args.src!r} holds a {type(ckpt).__name__}, not a checkpoint dict '
                 '(state_dict and meta, as mmseg saves them).')
    state = ckpt.get('state_dict', ckpt)
    meta = dict(ckpt.get('meta', {})) if 'state_dict' in ckpt else {}
    if args.to == 'mmovss':
        try:
            state, scale = mmseg_to_mmovss(state)
        except KeyError as err:  # keys of no SAN model
            sys.exit(f'error: {args.src!r} is not an mmseg SAN checkpoint: {err.args[0]}')
        meta['san_logit_scale'] = scale
        print(f'mmseg logit_scale = {scale:.4f} (temperature '
              f'{math.exp(scale):.2f}); mmovss takes it from the open_clip '
              f'model, or set model.decode_head.logit_scale='
              f'{math.exp(scale):.4f}.')
    else:
        scale = args.logit_scale
        if scale is None:
            scale = meta.get('san_logit_scale', math.log(100.0))
        state = mmovss_to_mmseg(state, scale)
    save_atomically(dict(state_dict=state, meta=meta), args.dst)
    print(f'saved {len(state)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
