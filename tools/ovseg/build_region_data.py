"""Build OVSeg's region training data (Liang et al., CVPR 2023, Sec. 3.2).

For every image of a COCO-Captions-style caption file:

1. class-agnostic mask proposals from a trained mask model (an mmovss
   ZegFormer/OVSeg/OpenSeg config and checkpoint; its head's
   ``predict_masks``);
2. masked crops of the proposals (the model head's region classifier, CLIP's
   mean colour outside the mask);
3. nouns of the captions (:func:`mmovss.datasets.captions.caption_words`,
   optionally restricted to a phrase vocabulary);
4. each crop is pseudo-labelled with the caption noun most similar to it in
   CLIP's space (:func:`pseudo_label_regions`).

Writes ``OUT/crops/*.png``, ``OUT/masks/*.png`` (1 inside the region) and
``OUT/regions.json``, the input of ``RegionCropDataset``::

    python tools/ovseg/build_region_data.py CONFIG CHECKPOINT \
        --captions data/coco/annotations/captions_train2017.json \
        --images data/coco/train2017 --out data/ovseg_regions

OVShapes keeps all splits in one caption file: add ``--file-prefix train/``
so that validation images never become training regions.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Tuple

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
import mmovss  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor  # noqa: E402


def pseudo_label_regions(region_embeds: Tensor, noun_embeds: Tensor
                         ) -> Tuple[Tensor, Tensor]:
    """Best noun of every region by cosine similarity.

    Args:
        region_embeds (Tensor): (N, D) region embeddings.
        noun_embeds (Tensor): (K, D) noun embeddings.

    Returns:
        tuple[Tensor, Tensor]: (N,) noun index and (N,) cosine similarity.
    """
    if noun_embeds.shape[0] == 0:
        raise ValueError('pseudo_label_regions: no nouns to choose from.')
    sim = F.normalize(region_embeds, dim=-1) @ F.normalize(noun_embeds,
                                                           dim=-1).t()
    scores, labels = sim.max(dim=-1)
    return labels, scores


def crops_to_pixels(crops: Tensor, classifier) -> np.ndarray:
    """CLIP-normalised crops (N, 3, S, S) -> (N, S, S, 3) uint8 BGR."""
    pixels = crops * classifier.clip_std.to(crops) + \
        classifier.clip_mean.to(crops)
    pixels = pixels.clamp(0, 255).round().byte().permute(0, 2, 3, 1)
    return pixels.flip(-1).cpu().numpy()  # RGB -> BGR for mmcv.imwrite


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='mask model config (mmovss)')
    parser.add_argument('checkpoint', help='mask model checkpoint')
    parser.add_argument('--captions', required=True,
                        help='COCO-Captions-style JSON')
    parser.add_argument('--images', required=True, help='image folder')
    parser.add_argument('--out', required=True, help='output folder')
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
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available()
                        else 'cpu')
    return parser.parse_args(argv)


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    import mmcv
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmseg.registry import MODELS
    from mmovss.datasets import CaptionDataset
    from mmovss.vocab import Vocabulary

    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model = model.to(args.device).eval()
    head = model.decode_head
    classifier = getattr(head, 'region_classifier', None)
    if not hasattr(head, 'predict_masks') or classifier is None:
        raise TypeError('The mask model needs a head with predict_masks() and '
                        'a region_classifier (ZegFormer/OVSeg configs).')
    captions = CaptionDataset(ann_file=args.captions,
                              data_prefix=dict(img_path=args.images),
                              word_vocabulary=args.word_vocabulary,
                              file_prefix=args.file_prefix,
                              serialize_data=False)
    os.makedirs(osp.join(args.out, 'crops'), exist_ok=True)
    os.makedirs(osp.join(args.out, 'masks'), exist_ok=True)
    regions, nouns = [], []
    for info in captions:
        words = sorted({w for ws in info['caption_words'] for w in ws})
        if not words:
            continue
        image = mmcv.imread(info['img_path'])
        data = model.data_preprocessor(
            dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)]), False)
        inputs = data['inputs'].to(args.device)
        with torch.no_grad():
            feats = model.extract_feat(inputs)
            logits = head.predict_masks(feats)[0]
            pixels = feats[-1][0]
            masks = F.interpolate(logits[None], size=pixels.shape[-2:],
                                  mode='bilinear')[0].sigmoid() > 0.5
            area = masks.flatten(1).float().mean(1)
            keep = (area >= args.min_area).nonzero()[:, 0]
            keep = keep[area[keep].argsort(descending=True)][:args.max_regions]
            if keep.numel() == 0:
                continue
            masks = masks[keep]
            crops, crop_masks = classifier.crop_regions(pixels, masks)
            embeds = classifier.encode(crops, crop_masks)
            noun_embeds = model.text_encoder(
                Vocabulary([[w] for w in words])).embeds
            labels, scores = pseudo_label_regions(embeds, noun_embeds)
        for crop, mask, label, score in zip(
                crops_to_pixels(crops, classifier), crop_masks.cpu().numpy(),
                labels.tolist(), scores.tolist()):
            name = f'{len(regions):07d}.png'
            mmcv.imwrite(crop, osp.join(args.out, 'crops', name))
            mmcv.imwrite(mask.astype(np.uint8), osp.join(args.out, 'masks',
                                                         name))
            regions.append(dict(crop=f'crops/{name}', mask=f'masks/{name}',
                                noun=words[label], score=round(score, 4),
                                image=osp.basename(info['img_path'])))
            if words[label] not in nouns:
                nouns.append(words[label])
    with open(osp.join(args.out, 'regions.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(nouns=sorted(nouns), regions=regions), f)
    print(f'{len(regions)} regions, {len(nouns)} nouns -> {args.out}')
    return regions


if __name__ == '__main__':
    main()
