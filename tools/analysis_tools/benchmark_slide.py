"""Times batched sliding-window inference against one window at a time.

NACLIP on a randomly initialised CLIP ViT-B/16 (open_clip ``ViT-B-16``, no
download), images resized to a short side of 336, windows 224 / stride 112:
the time per image of :class:`TrainingFreeSegmentor` ``slide_inference``
with ``crop_batch_size`` windows per forward, against the same model with
one window per forward (the loop of the published codes). Both give the same
logits (checked). Example::

    python tools/analysis_tools/benchmark_slide.py --shape 336 448 \\
        --crop-batch-size 8 --repeats 3 --threads 2
"""
import argparse
import os.path as osp
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

import mmovss  # noqa: E402,F401
from mmovss.benchmarking import timed_runs  # noqa: E402

from mmengine.registry import init_default_scope  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--shape', type=int, nargs=2, default=(336, 448),
                        help='resized image (H W), short side 336 by default')
    parser.add_argument('--crop', type=int, default=224)
    parser.add_argument('--stride', type=int, default=112)
    parser.add_argument('--crop-batch-size', type=int, default=8)
    parser.add_argument('--num-names', type=int, default=60,
                        help='vocabulary size (PC-60 has 60 classes)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads (0: torch default)')
    return parser.parse_args()


def build(crop, stride, crop_batch_size, num_names):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='TrainingFreeSegmentor',
        vocabulary=[f'class {i}' for i in range(num_names)],
        backbone=dict(type='TrainingFreeCLIPViT', model_name='ViT-B-16',
                      pretrained=None, last_block_mode='naclip'),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_name='ViT-B-16',
                          pretrained=None, templates='single'),
        decode_head=dict(type='TrainingFreeHead', in_channels=512,
                         logit_scale=40.0),
        test_cfg=dict(mode='slide', crop_size=(crop, crop),
                      stride=(stride, stride),
                      crop_batch_size=crop_batch_size)))
    return model.eval()


def time_per_image(model, image, metas, class_embeds, repeats):
    with torch.no_grad():
        out = model.slide_inference(image, metas, class_embeds)  # warm-up
        times = timed_runs(
            lambda: model.slide_inference(image, metas, class_embeds),
            repeats)
    return sum(times) / repeats, out


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    init_default_scope('mmseg')
    model = build(args.crop, args.stride, args.crop_batch_size,
                  args.num_names)
    h, w = args.shape
    image = torch.randn(1, 3, h, w)
    metas = [dict(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w))]
    windows = len(model.crop_boxes((h, w), (args.crop, ) * 2,
                                   (args.stride, ) * 2))
    with torch.no_grad():
        class_embeds = model.class_embeddings()
    batched, out_b = time_per_image(model, image, metas, class_embeds,
                                    args.repeats)
    model.test_cfg['crop_batch_size'] = 1
    single, out_s = time_per_image(model, image, metas, class_embeds,
                                   args.repeats)
    torch.testing.assert_close(out_b, out_s, rtol=1e-4, atol=1e-5)
    print(f'NACLIP ViT-B/16 (random weights), image {h}x{w}, '
          f'{windows} windows of {args.crop} / stride {args.stride}, '
          f'{args.num_names} names, {torch.get_num_threads()} threads, CPU')
    print(f'  one window per forward   : {single:.3f} s / image')
    print(f'  {args.crop_batch_size} windows per forward    : '
          f'{batched:.3f} s / image  (x{single / batched:.2f})')


if __name__ == '__main__':
    main()
