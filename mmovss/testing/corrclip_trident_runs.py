"""Our CorrCLIP and Trident models rebuilt from a parity fixture of their official code.

A fixture (``<method>.json`` + ``<method>.npz``, written by
``tools/parity/{corrclip,trident}_reference.py``; README in
``tests/data/parity_corrclip_trident/``) records a run of the published
segmentor on a tiny random OpenAI-format CLIP. :class:`CorrCLIPRun` and
:class:`TridentRun` build our model from the method's config with overrides
taken from the JSON only, and give the fixture's input; used by
``tests/test_parity_corrclip_trident.py`` and by the time comparison with the
official code (``mmovss.benchmarking.training_free_official``).
"""
import json
import os

import numpy as np
import torch

from mmovss.testing.clip import openai_model_cfg

from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

__all__ = ['REPO', 'PARITY_DIR', 'COMMITTED', 'CONFIG', 'TRIDENT_CONFIG', 'openai_model_cfg',
           'fixture_dir', 'shared_file', 'missing_reason', 'CorrCLIPRun', 'TridentRun']

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARITY_DIR = os.environ.get(
    'MMOVSS_PARITY_DIR', os.path.join(REPO, '..', 'shared', 'parity', 'A'))
COMMITTED = os.path.join(REPO, 'tests', 'data', 'parity_corrclip_trident')
CONFIG = 'configs/corrclip/corrclip_vit-b16-dino-b8_voc21.py'
TRIDENT_CONFIG = 'configs/trident/trident_vit-b16-dino-b16-sam-b_voc21.py'


def fixture_dir(method: str) -> str:
    """``MMOVSS_PARITY_DIR`` if it holds ``<method>.json``, else ours."""
    if os.path.isfile(os.path.join(PARITY_DIR, f'{method}.json')):
        return PARITY_DIR
    return COMMITTED


def shared_file(directory: str, name: str):
    """A fixture file from its directory or from the shared set A."""
    for root in (directory, PARITY_DIR):
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    return None


def missing_reason(directory: str, json_path: str):
    """Why the fixture cannot run (None when it can)."""
    if not os.path.isfile(json_path):
        return f'no fixture {json_path}'
    with open(json_path) as f:
        meta = json.load(f)
    for key in ('weights_file', 'image_file'):
        if shared_file(directory, meta[key]) is None:
            return (f'{meta[key]} not in {directory} nor {PARITY_DIR} (set '
                    f'MMOVSS_PARITY_DIR to ../shared/parity/A)')
    return None


class CorrCLIPRun:
    """The recorded run, our model built from the JSON and its inputs.

    The options every run shares (tiny CLIP, DINO, vocabulary, head) are set
    here; :meth:`method_options` adds the method's own.
    """

    config = CONFIG
    meta_key = 'corrclip'

    def __init__(self, directory: str, json_path: str):
        with open(json_path) as f:
            self.meta = meta = json.load(f)
        self.expected = np.load(json_path[:-len('.json')] + '.npz')
        weights = shared_file(directory, meta['weights_file'])
        self.image = shared_file(directory, meta['image_file'])
        state_dict = torch.load(weights, map_location='cpu',
                                weights_only=True)
        model_cfg = openai_model_cfg(state_dict)
        dino = meta['dino_cfg']
        cfg = Config.fromfile(os.path.join(REPO, self.config))
        options = {
            'model.vocabulary': [', '.join(c) for c in meta['classes']],
            'model.data_preprocessor.mean': meta['normalization']['mean'],
            'model.data_preprocessor.std': meta['normalization']['std'],
            'model.text_encoder.templates': 'imagenet',
            'model.text_encoder.cache_dir': None,
            'model.backbone.vfm': dict(
                model_name='vit_small_patch8_224.dino',
                pretrained=os.path.join(directory,
                                        meta['dino_weights_file']),
                model_kwargs=dict(embed_dim=dino['embed_dim'],
                                  depth=dino['depth'],
                                  num_heads=dino['num_heads'],
                                  img_size=dino['img_size'][0])),
            'model.decode_head.in_channels': model_cfg['embed_dim'],
            'model.decode_head.logit_scale': meta['logit_scale'],
            'model.decode_head.prob_thd': meta['prob_thd'],
            'model.decode_head.background_index': 0,
        }
        options.update({f'model.backbone.{key}': meta[self.meta_key][key]
                        for key in self.backbone_keys})
        options.update(self.method_options(directory))
        for part in ('backbone', 'text_encoder'):
            options[f'model.{part}.model_cfg'] = model_cfg
            options[f'model.{part}.pretrained'] = weights
        cfg.merge_from_dict(options)
        self.cfg = cfg
        init_default_scope('mmseg')
        self.model = MODELS.build(cfg.model).eval()

    #: backbone settings copied from ``meta[meta_key]``
    backbone_keys = ('tau', 'merge_eps', 'alpha', 'beta', 'spatial_layers')

    def method_options(self, directory: str) -> dict:
        """CorrCLIP's fixed masks and sliding window."""
        meta = self.meta
        return {
            'model.decode_head.mask_refinement.generator.mask_dir':
            os.path.join(directory, meta['mask_dir']),
            'model.test_cfg': dict(
                mode='slide', crop_size=(meta['slide']['crop'], ) * 2,
                stride=(meta['slide']['stride'], ) * 2, crop_batch_size=4),
        }

    def data(self):
        """The network input (1, 3, H, W) and its samples."""
        short = self.meta['resized_hw']
        pipeline = [dict(type='LoadImageFromFile'),
                    dict(type='Resize', scale=(2048, min(short)),
                         keep_ratio=True),
                    dict(type='PackSegInputs')]
        sample = Compose(pipeline)(dict(img_path=self.image))
        batch = self.model.data_preprocessor(
            dict(inputs=[sample['inputs']],
                 data_samples=[sample['data_samples']]), False)
        return batch['inputs'], batch['data_samples']


class TridentRun(CorrCLIPRun):
    """The recorded Trident run and our model built from its JSON."""

    config = TRIDENT_CONFIG
    meta_key = 'trident'
    backbone_keys = ('beta', 'gamma', 'cos_fac', 'refine_neg_cos', 'slide_crop',
                     'slide_stride')

    def method_options(self, directory: str) -> dict:
        """Trident's tiny SAM image encoder."""
        sam = self.meta['sam_cfg']
        encoder_cfg = {k: v for k, v in sam.items() if k != 'norm_eps'}
        encoder_cfg['global_attn_indexes'] = tuple(
            encoder_cfg['global_attn_indexes'])
        return {'model.backbone.sam': dict(
            model_type='vit_b',
            checkpoint=os.path.join(directory, self.meta['sam_weights_file']),
            encoder_cfg=encoder_cfg)}
