"""LSeg against its official code: the released ADE20K demo model's architecture.

The fixture (``tools/parity/lseg_reference.py``) holds a tiny official
``LSegNet`` (timm ViT with LSeg's hooks 5/11/17/23, ``'project'`` readout, BN
fusion blocks, fp16 CLIP text tower as ``clip.load`` gives it on a GPU) and
its outputs. :func:`run_fixture` converts its state dict with
:mod:`mmovss.converters.lseg_official`, loads it strictly into our model
built from ``configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py``
with the fixture's tiny widths, and compares every stage.
"""
import copy
import os.path as osp
from typing import Dict

import numpy as np
import torch

from mmovss.converters.lseg_official import convert

from . import Fixture, ParityReport, decided_pixels

__all__ = ['OFFICIAL_CONFIG', 'tiny_model_cfg', 'official_state_dict', 'build_model',
           'run_fixture']

OFFICIAL_CONFIG = 'configs/lseg/lseg-official_vit-l16-clip-vit-b32_200e_ade20k-150-480x480.py'


def _repo_root() -> str:
    return osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def tiny_model_cfg(meta: dict) -> dict:
    """The official config's model with the fixture's tiny widths."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(_repo_root(), OFFICIAL_CONFIG))
    model = copy.deepcopy(cfg.model.to_dict())
    tiny = meta['tiny']
    model['vocabulary'] = list(meta['labels'])
    model['backbone']['model_kwargs'] = dict(
        embed_dim=tiny['vit_width'], depth=tiny['vit_depth'], num_heads=tiny['vit_heads'],
        img_size=tiny['vit_grid_size'])
    model['backbone']['out_indices'] = tuple(meta['hooks'])
    text = model['text_encoder']
    text.pop('model_name', None)
    text.update(model_cfg=copy.deepcopy(meta['clip_model_cfg']), pretrained=None,
                cache_dir=None, quick_gelu=meta.get('quick_gelu', True))
    head = model['decode_head']
    head.update(in_channels=tiny['vit_width'], channels=tiny['features'],
                post_process_channels=tuple(tiny['reassemble']),
                embed_dim=meta['clip_model_cfg']['embed_dim'])
    official = meta['official']
    if official['arch_option']:
        head.update(reg_block={1: 'bottleneck', 2: 'depthwise'}[official['arch_option']],
                    reg_depth=official['block_depth'],
                    reg_act_cfg=dict(type='LeakyReLU'))
    return model


def official_state_dict(fixture: Fixture) -> Dict[str, torch.Tensor]:
    """The fixture's official state dict with its full (zero) token table restored."""
    state = dict(fixture.state_dict)
    key = fixture.meta['token_table']['key']
    shape = tuple(int(s) for s in fixture.inputs['token_table_shape'])
    table = torch.zeros(shape)
    table[torch.from_numpy(fixture.inputs['token_ids'])] = torch.from_numpy(
        fixture.inputs['token_rows'])
    state[key] = table
    return state


def build_model(fixture: Fixture):
    """Our model from the official config (tiny widths), official weights loaded strictly."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    model = MODELS.build(tiny_model_cfg(fixture.meta))
    model.load_state_dict(convert(official_state_dict(fixture)), strict=True)
    return model.eval()


def _preprocess(model, image: np.ndarray) -> torch.Tensor:
    """Our data preprocessor on the fixture's RGB image, given as mmcv loads it (BGR)."""
    from mmseg.structures import SegDataSample
    bgr = torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1)
    sample = SegDataSample(metainfo=dict(img_shape=image.shape[:2], ori_shape=image.shape[:2]))
    data = model.data_preprocessor(dict(inputs=[bgr], data_samples=[sample]), False)
    return data['inputs']


@torch.no_grad()
def run_fixture(fixture: Fixture) -> ParityReport:
    """Compares every stage of an LSeg fixture (module docstring)."""
    model = build_model(fixture)
    meta, stages = fixture.meta, fixture.stages
    report = ParityReport()
    atol = meta.get('tolerances', {}).get('default', 1e-4)
    ours = _preprocess(model, fixture.inputs['image'])
    report.compare('normalized_image', ours, stages['normalized_image'], atol)
    # the stages below start from the official input tensor: the two normalisations
    # ((x - 127.5) / 127.5 here, (x / 255 - 0.5) / 0.5 there) differ by float rounding
    # (~6e-8), which 24 blocks grow past the half-precision rounding of the logits
    x = torch.from_numpy(stages['normalized_image'])

    head, vit = model.decode_head, model.backbone.model
    got: Dict[str, object] = {}
    handles = []

    def keep(name):
        def hook(_m, _i, out):
            got[name] = [o.clone() for o in out] if isinstance(out, list) else out.clone()
        return hook

    for block in meta['hooks']:
        handles.append(vit.blocks[block].register_forward_hook(keep(f'vit/block{block}')))
    if head.readout_type == 'project':
        for i, proj in enumerate(head.reassemble.readout_projects):
            handles.append(proj.register_forward_hook(keep(f'readout/{i + 1}')))
    handles.append(head.reassemble.register_forward_hook(keep('reassemble')))
    for i, conv in enumerate(head.convs):
        handles.append(conv.register_forward_hook(keep(f'rn/{i + 1}')))
    for j, block in enumerate(head.fusion_blocks):  # fusion_blocks.0 is refinenet4
        handles.append(block.register_forward_hook(keep(f'refinenet/{4 - j}')))
    handles.append(head.to_embed.register_forward_hook(keep('pixel_embeddings')))
    try:
        logits = model._forward(x)
    finally:
        for hdl in handles:
            hdl.remove()
    got.update({f'reassemble/{i + 1}': t for i, t in enumerate(got.pop('reassemble'))})
    stride = meta['pixel_embeddings_channel_stride']
    got['pixel_embeddings'] = got['pixel_embeddings'][:, ::stride]
    got['text_embeddings'] = model.class_embeddings().embeds
    # the logits are scaled cosines of L2-normalised pixel embeddings: compared as
    # cosines (divided by the logit scale), so the tolerance is in the units of the
    # similarity; the normalisation of these tiny random embeddings amplifies float
    # rounding (embeddings within 7.6e-6, cosines within 6.3e-5 on an Intel CPU
    # against the AMD-made fixture)
    scale = float(meta['official']['logit_scale'])
    got['logits'] = logits / scale
    stages = dict(stages, logits=stages['logits'] / scale)
    for name in sorted(stages):
        if name in ('normalized_image', 'labels'):
            continue
        if name not in got:
            continue  # reported by ParityReport.missing_stages
        report.compare(name, got[name], stages[name], atol)
    # labels where the official cosines separate the best class by more than the
    # tolerance (ties within it may go either way)
    report.compare_labels('labels', logits.argmax(dim=1), stages['labels'],
                          decided_pixels(stages['logits'], 2 * atol, axis=1))
    return report
