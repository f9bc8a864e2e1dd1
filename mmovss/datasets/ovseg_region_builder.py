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
           'check_region_settings', 'world_unseen_names', 'image_regions',
           'build_region_data']


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


def check_region_settings(max_regions: int, min_area: float) -> None:
    """Refuses proposal limits that silently drop regions.

    ``max_regions`` 0 kept none and a negative one dropped the smallest
    proposals (a Python slice ``[:-1]``); ``min_area`` is a fraction of the
    image.

    Raises:
        ValueError: Naming the option and the range.
    """
    if max_regions < 1:
        raise ValueError(f'--max-regions {max_regions}: keep at least 1 proposal per image.')
    if not 0 <= min_area < 1:
        raise ValueError(f'--min-area {min_area}: a fraction of the image in [0, 1).')


def world_unseen_names(captions: str) -> List[str]:
    """The unseen class names of the OVShapes world holding ``captions``.

    Read from the ``split.json`` beside the caption file (written by
    ``tools/ovshapes/make_dataset.py``); empty for other caption files.
    """
    split = osp.join(osp.dirname(osp.abspath(captions)), 'split.json')
    if not osp.isfile(split):
        return []
    with open(split, encoding='utf-8') as f:
        return list(json.load(f).get('unseen', []))


def _check_no_forbidden_nouns(dataset, forbidden: Sequence[str]) -> None:
    forbidden = {n.lower() for n in forbidden}
    found = sorted({w for info in dataset for ws in info['caption_words'] for w in ws
                    if w.lower() in forbidden})
    if found:
        raise ValueError(
            f'The caption nouns include unseen class names {found[:5]}'
            f"{' …' if len(found) > 5 else ''}: regions pseudo-labelled with them would "
            'train the mask prompts on unseen classes (the open-vocabulary protocol '
            'forbids it). Restrict the nouns to the seen names (--word-vocabulary), or '
            'pass --allow-unseen-nouns for an ablation that knowingly uses them.')


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
                      min_area: float = 0.01,
                      forbidden_nouns: Sequence[str] = ()) -> List[dict]:
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
        forbidden_nouns: Names no region may be labelled with (the unseen
            classes, :func:`world_unseen_names`); checked over every
            caption before anything is written.

    Returns:
        list[dict]: The regions written (``crop``, ``mask``, ``noun``,
        ``score``, ``image``).

    Raises:
        ValueError: Bad limits (:func:`check_region_settings`) or a caption
            noun in ``forbidden_nouns``.

    An earlier ``regions.json`` in ``out`` is removed before the first crop
    is written and the new one is written last (through a temporary file),
    so an interrupted run leaves no index that names crops of another run.
    """
    from mmovss.datasets import CaptionDataset

    import mmcv
    check_mask_model(model)
    check_region_settings(max_regions, min_area)
    dataset = CaptionDataset(ann_file=captions,
                             data_prefix=dict(img_path=images),
                             word_vocabulary=word_vocabulary,
                             file_prefix=file_prefix, serialize_data=False)
    _check_no_forbidden_nouns(dataset, forbidden_nouns)
    index = osp.join(out, 'regions.json')
    if osp.isfile(index):  # an earlier run's index would name the new crops
        os.remove(index)
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
    partial = osp.join(out, '.regions.json.partial')
    with open(partial, 'w', encoding='utf-8') as f:
        json.dump(dict(nouns=sorted(nouns), regions=regions), f)
    os.replace(partial, index)
    return regions
