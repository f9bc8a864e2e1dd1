"""Masked region crops with noun labels, for OVSeg's mask prompt tuning.

Written by ``tools/ovseg/build_region_data.py``: a folder with ``crops/``
(masked crops, outside filled with CLIP's mean colour), ``masks/`` (region
masks, 1 inside, 0 outside) and ``regions.json``::

    {"nouns": ["cat", "dog", ...],
     "regions": [{"crop": "crops/000000.png", "mask": "masks/000000.png",
                  "noun": "cat", "image": "source.jpg", "score": 0.83}, ...]}
"""
import json
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset
from mmseg.registry import DATASETS

__all__ = ['RegionCropDataset']


@DATASETS.register_module()
class RegionCropDataset(BaseDataset):
    """Region crops (``img_path``), masks (``seg_map_path``) and the index
    of their noun (``region_label``); the nouns are the dataset's classes.

    Args:
        ann_file (str): ``regions.json``, relative to ``data_root``.
        **kwargs: :class:`mmengine.dataset.BaseDataset` arguments.
    """

    METAINFO = dict(classes=None)

    def __init__(self, ann_file: str = 'regions.json', **kwargs):
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'RegionCropDataset: {self.ann_file} not found; build it with '
                f'tools/ovseg/build_region_data.py.')
        with open(self.ann_file, encoding='utf-8') as f:
            data = json.load(f)
        if 'nouns' not in data or 'regions' not in data:
            raise ValueError(f'{self.ann_file} needs "nouns" and "regions".')
        nouns = list(data['nouns'])
        index = {n: i for i, n in enumerate(nouns)}
        root = osp.dirname(self.ann_file)
        out = []
        for i, region in enumerate(data['regions']):
            if region['noun'] not in index:
                raise ValueError(f'{self.ann_file}: region {i} has noun '
                                 f'{region["noun"]!r}, not in "nouns".')
            out.append(dict(img_path=osp.join(root, region['crop']),
                            seg_map_path=osp.join(root, region['mask']),
                            region_label=index[region['noun']],
                            label_map=None, reduce_zero_label=False,
                            seg_fields=[]))
        self._metainfo['classes'] = tuple(nouns)
        return out
