"""Image-caption data in the COCO-Captions JSON format (OpenSeg's L_G).

The annotation file is COCO's ``captions_*.json``::

    {"images": [{"id": 1, "file_name": "000001.jpg", ...}, ...],
     "annotations": [{"image_id": 1, "caption": "A cat on a mat."}, ...]}

The OVShapes world (:mod:`mmovss.ovshapes.writer`) writes a plain mapping
from image path (relative to its image folder) to captions instead::

    {"train/000000.png": ["a striped red shape on sand.", ...], ...}

which is read as well; ``file_prefix='train/'`` keeps one split.

Every image with at least one caption is one sample; its ``captions`` are
kept and :class:`SampleCaption` picks one per iteration and stores its words
(``caption``, ``caption_words``) for the grounding loss. Pack them with
``PackSegInputs(meta_keys=(..., 'caption', 'caption_words'))``.

Word extraction (:func:`caption_words`) has no parser: with a phrase
vocabulary (e.g. the class names of a benchmark) the caption's phrases found
in it are kept, longest match first; without one, the words that are not
stop words. OpenSeg and OVSeg extract nouns with a language parser; this is
a dependency-free approximation.
"""
import json
import os.path as osp
import random
import re
from typing import List, Optional, Sequence

from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS, TRANSFORMS

__all__ = ['CaptionDataset', 'SampleCaption', 'caption_words',
           'STOP_WORDS']

#: Words dropped when no phrase vocabulary is given.
STOP_WORDS = frozenset("""
a an the and or but of on in at to for from with without by over under into
onto up down out off near next is are was were be been being has have had it
its this that these those there here some many few several two three four
one other another each his her their its our your my very while as than
then top front back side left right behind above below around through
sitting standing holding looking walking lying parked made using
""".split())


def caption_words(caption: str,
                  vocabulary: Optional[Sequence[str]] = None,
                  stop_words=STOP_WORDS) -> List[str]:
    """Distinct words or phrases of a caption, in order of appearance.

    Args:
        caption (str): The caption.
        vocabulary (Sequence[str], optional): Phrases to look for (matched
            case-insensitively on word boundaries, longest first). None keeps
            every word that is not a stop word.
        stop_words: Words dropped without a vocabulary.
    """
    tokens = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", caption.lower())
    found: List[str] = []
    if vocabulary is None:
        for tok in tokens:
            if tok not in stop_words and not tok.isdigit() and \
                    tok not in found:
                found.append(tok)
        return found
    phrases = {}
    for phrase in vocabulary:
        key = tuple(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", phrase.lower()))
        if key:
            phrases.setdefault(key, phrase)
    longest = max((len(k) for k in phrases), default=0)
    i = 0
    while i < len(tokens):
        for n in range(min(longest, len(tokens) - i), 0, -1):
            phrase = phrases.get(tuple(tokens[i:i + n]))
            if phrase is not None:
                if phrase not in found:
                    found.append(phrase)
                i += n
                break
        else:
            i += 1
    return found


@DATASETS.register_module()
class CaptionDataset(BaseDataset):
    """Images with COCO-style captions.

    Args:
        ann_file (str): The captions JSON (relative to ``data_root``).
        data_prefix (dict): ``img_path``: image folder (relative to
            ``data_root``).
        word_vocabulary (str | Sequence[str], optional): Phrases for
            :func:`caption_words` (a list or a text file, one per line;
            synonyms after a comma are separate phrases). None: all non-stop
            words.
        file_prefix (str, optional): Keep only images whose file name
            starts with it (e.g. ``'train/'`` for the OVShapes mapping
            format, whose one file holds every split).
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments.
    """

    METAINFO = dict(classes=None)

    def __init__(self, ann_file: str, data_prefix: dict = dict(img_path=''),
                 word_vocabulary=None, file_prefix: Optional[str] = None,
                 **kwargs):
        self.word_vocabulary = self._load_phrases(word_vocabulary)
        self.file_prefix = file_prefix
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    @staticmethod
    def _load_phrases(source) -> Optional[List[str]]:
        if source is None:
            return None
        if isinstance(source, str):
            if not osp.isfile(source):
                raise FileNotFoundError(
                    f'CaptionDataset: word_vocabulary file {source!r} not '
                    f'found (one phrase per line, or pass a list).')
            with open(source, encoding='utf-8') as f:
                source = [ln.strip() for ln in f
                          if ln.strip() and not ln.startswith('#')]
        phrases = []
        for entry in source:
            phrases.extend(p.strip() for p in str(entry).split(',')
                           if p.strip())
        return phrases

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'CaptionDataset: caption file {self.ann_file} not found.')
        with open(self.ann_file, encoding='utf-8') as f:
            data = json.load(f)
        if self._is_path_mapping(data):
            data = self._mapping_to_coco(data)
        if not isinstance(data, dict) or 'images' not in data or \
                'annotations' not in data:
            raise ValueError(
                f'{self.ann_file} is not a COCO-Captions file: it needs '
                f'"images" and "annotations" lists.')
        captions = {}
        for ann in data['annotations']:
            if 'image_id' not in ann or 'caption' not in ann:
                raise ValueError(f'{self.ann_file}: every annotation needs '
                                 f'"image_id" and "caption", got {ann}.')
            captions.setdefault(ann['image_id'], []).append(ann['caption'])
        prefix = self.data_prefix.get('img_path', '')
        out = []
        for image in data['images']:
            caps = captions.get(image['id'])
            if not caps:
                continue
            if self.file_prefix is not None and \
                    not image['file_name'].startswith(self.file_prefix):
                continue
            out.append(dict(
                img_path=osp.join(prefix, image['file_name']),
                img_id=image['id'], captions=caps,
                caption_words=[caption_words(c, self.word_vocabulary)
                               for c in caps],
                seg_fields=[], reduce_zero_label=False))
        return out

    @staticmethod
    def _is_path_mapping(data) -> bool:
        """``{"path": ["caption", ...], ...}`` (OVShapes' captions.json)."""
        return isinstance(data, dict) and bool(data) and \
            'annotations' not in data and all(
                isinstance(v, list) and all(isinstance(c, str) for c in v)
                for v in data.values())

    @staticmethod
    def _mapping_to_coco(data: dict) -> dict:
        """The path -> captions mapping in the COCO-Captions layout."""
        images, annotations = [], []
        for i, (path, caps) in enumerate(sorted(data.items())):
            images.append(dict(id=i, file_name=path))
            annotations.extend(dict(image_id=i, caption=c) for c in caps)
        return dict(images=images, annotations=annotations)


@TRANSFORMS.register_module()
class SampleCaption(BaseTransform):
    """Picks one caption of the sample (``caption``, ``caption_words``).

    Args:
        random_pick (bool): Pick at random (training); False takes the
            first caption.
        merge_all (bool): Use the words of all captions instead of one.
    """

    def __init__(self, random_pick: bool = True, merge_all: bool = False):
        self.random_pick = random_pick
        self.merge_all = merge_all

    def transform(self, results: dict) -> dict:
        captions = results.get('captions')
        words = results.get('caption_words')
        if not captions or words is None:
            raise KeyError('SampleCaption needs `captions` and '
                           '`caption_words` (use CaptionDataset).')
        if self.merge_all:
            merged = []
            for ws in words:
                merged.extend(w for w in ws if w not in merged)
            results['caption'] = ' '.join(captions)
            results['caption_words'] = merged
            return results
        i = random.randrange(len(captions)) if self.random_pick else 0
        results['caption'] = captions[i]
        results['caption_words'] = list(words[i])
        return results
