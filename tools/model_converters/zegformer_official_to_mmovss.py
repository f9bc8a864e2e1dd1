"""Convert a ZegFormer checkpoint as released by its authors to mmovss keys.

Thin wrapper of :mod:`mmovss.converters.zegformer_official` (every key mapped
or dropped with its reason; unknown or missing keys are refused)::

    python tools/model_converters/zegformer_official_to_mmovss.py \
        zegformer_R101_bs32_60k_vit16_coco-stuff.pth zegformer_r101_coco.pth \
        [--clip open_clip_vit-b16_openai.bin]

then ``tools/test.py configs/zegformer/zegformer-official_*.py zegformer_r101_coco.pth``.
The segment temperature is kept as ``meta.temperature``.
"""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.converters.files import converter_main  # noqa: E402


def _add_arguments(parser):
    parser.add_argument('--clip', default=None,
                        help="OpenAI CLIP ViT-B/16 weights (state dict, e.g. open_clip's "
                             "'openai' ViT-B-16 file) to fill the CLIP towers, so that the "
                             'official configs load the result strictly')


def _convert_kwargs(args):
    from mmovss.converters.files import read_checkpoint
    return dict(clip=read_checkpoint(args.clip) if args.clip else None)


def main(argv=None):
    return converter_main('zegformer_official', argv, __doc__.split('\n')[0],
                          src_help='official checkpoint (zegformer_*.pth)',
                          add_arguments=_add_arguments, convert_kwargs=_convert_kwargs)


if __name__ == '__main__':
    main()
