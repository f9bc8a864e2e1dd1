"""OVSeg's region training data (Liang et al., CVPR 2023, Sec. 3.2).

Writes what :class:`~mmovss.datasets.ovseg_regions.RegionCropDataset` reads.
For every image of a COCO-Captions-style caption file:

1. class-agnostic mask proposals from a trained mask model (an mmovss
   ZegFormer/OVSeg/OpenSeg segmentor; its head's ``predict_masks``);
2. masked crops of the proposals (the head's region classifier, CLIP's mean
   colour outside the mask);
3. nouns of the captions (:func:`mmovss.datasets.captions.caption_words`,
   optionally restricted to a phrase vocabulary);
4. each crop is pseudo-labelled with the caption noun most similar to it in
   CLIP's space (:func:`pseudo_label_regions`).

``tools/ovseg/build_region_data.py`` is the command-line wrapper.
"""
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['pseudo_label_regions', 'crops_to_pixels', 'check_mask_model',
           'image_regions', 'build_region_data']


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


def check_mask_model(model) -> None:
    """Raises a clear error for a model that cannot propose regions."""
    head = getattr(model, 'decode_head', None)
    if not hasattr(head, 'predict_masks') or \
            getattr(head, 'region_classifier', None) is None:
        raise TypeError('The mask model needs a head with predict_masks() and '
                        'a region_classifier (ZegFormer/OVSeg configs).')


def image_regions(model, image: np.ndarray, words: Sequence[str],
                  min_area: float = 0.01, max_regions: int = 20):
    """The pseudo-labelled region crops of one image.

    Args:
        model: A mask model (:func:`check_mask_model`), in eval mode.
        image: (H, W, 3) BGR uint8.
        words: The candidate nouns (of the image's captions).
        min_area: Smallest proposal area (fraction of the image).
        max_regions: Largest proposals kept.

    Returns:
        list[tuple]: (crop pixels (S, S, 3) BGR uint8, mask (S, S) uint8,
        noun index, score) per kept proposal, largest first.
    """
    from mmovss.vocab import Vocabulary
    head = model.decode_head
    classifier = head.region_classifier
    device = next(model.parameters()).device
    data = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(image).permute(2, 0, 1)]), False)
    inputs = data['inputs'].to(device)
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        logits = head.predict_masks(feats)[0]
        pixels = feats[-1][0]
        masks = F.interpolate(logits[None], size=pixels.shape[-2:],
                              mode='bilinear')[0].sigmoid() > 0.5
        area = masks.flatten(1).float().mean(1)
        keep = (area >= min_area).nonzero()[:, 0]
        keep = keep[area[keep].argsort(descending=True)][:max_regions]
        if keep.numel() == 0:
            return []
        masks = masks[keep]
        crops, crop_masks = classifier.crop_regions(pixels, masks)
        embeds = classifier.encode(crops, crop_masks)
        noun_embeds = model.text_encoder(
            Vocabulary([[w] for w in words])).embeds
        labels, scores = pseudo_label_regions(embeds, noun_embeds)
    return [(crop, mask.astype(np.uint8), label, score)
            for crop, mask, label, score in zip(
                crops_to_pixels(crops, classifier), crop_masks.cpu().numpy(),
                labels.tolist(), scores.tolist())]


def build_region_data(model, captions: str, images: str, out: str,
                      file_prefix: Optional[str] = None,
                      word_vocabulary: Optional[str] = None,
                      max_regions: int = 20,
                      min_area: float = 0.01) -> List[dict]:
    """Writes ``out/crops/*.png``, ``out/masks/*.png`` and ``regions.json``.

    Args:
        model: A mask model (:func:`check_mask_model`), in eval mode.
        captions: COCO-Captions-style JSON (or OVShapes' ``captions.json``).
        images: The image folder.
        out: The output folder.
        file_prefix: Keep only images whose file name starts with it (e.g.
            ``'train/'`` for OVShapes' one file holding every split).
        word_vocabulary: Phrase file restricting the nouns (optional).
        max_regions: Largest proposals kept per image.
        min_area: Smallest proposal area (fraction of the image).

    Returns:
        list[dict]: The regions written (``crop``, ``mask``, ``noun``,
        ``score``, ``image``).
    """
    from mmovss.datasets import CaptionDataset

    import mmcv
    check_mask_model(model)
    dataset = CaptionDataset(ann_file=captions,
                             data_prefix=dict(img_path=images),
                             word_vocabulary=word_vocabulary,
                             file_prefix=file_prefix, serialize_data=False)
    os.makedirs(osp.join(out, 'crops'), exist_ok=True)
    os.makedirs(osp.join(out, 'masks'), exist_ok=True)
    regions, nouns = [], []
    for info in dataset:
        words = sorted({w for ws in info['caption_words'] for w in ws})
        if not words:
            continue
        image = mmcv.imread(info['img_path'])
        for crop, mask, label, score in image_regions(
                model, image, words, min_area, max_regions):
            name = f'{len(regions):07d}.png'
            mmcv.imwrite(crop, osp.join(out, 'crops', name))
            mmcv.imwrite(mask, osp.join(out, 'masks', name))
            regions.append(dict(crop=f'crops/{name}', mask=f'masks/{name}',
                                noun=words[label], score=round(score, 4),
                                image=osp.basename(info['img_path'])))
            if words[label] not in nouns:
                nouns.append(words[label])
    with open(osp.join(out, 'regions.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(nouns=sorted(nouns), regions=regions), f)
    return regions
