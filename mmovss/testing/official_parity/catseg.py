"""CAT-Seg against its released code (``tools/parity/catseg_reference.py``).

A fixture holds the official ``CATSeg`` state dict of a tiny model (CLIP
width 16, 9 image blocks, 2 text blocks; aggregator width 16; see
``meta['tiny']``), one image, the class names and the official outputs of
two runs of the same model:

* ``whole/*``: ``TEST.SLIDING_WINDOW False`` (``CATSeg.forward``);
* ``slide/*``: ``TEST.SLIDING_WINDOW True`` (``inference_sliding_window``:
  640 x 640 resize, 384 windows at stride 256 and the global view);
* ``topk/*``: the whole image with the aggregator's ``pad_len`` 2 < 3
  classes: only the 2 classes of highest cost are aggregated, the other gets
  logit -100 (the released path for A-847 / PC-459, where pad_len = 256).

Stages of each run (official names; ``meta['strides']`` gives the steps of
the strided subsets stored for the large ones, the same subset of ours is
compared): ``clip_dense`` (dense CLIP embeddings, patch tokens),
``clip_block3`` / ``clip_block7`` (decoder-guidance blocks), ``text``
(text embeddings), ``cost`` (cost volume), ``spatial{i}`` / ``aggregation{i}``
(each aggregation layer after its spatial part and after its class part),
``decoder1`` / ``decoder2`` (upsampling decoder), ``logits`` (head logits of
every view), ``probs_grid`` (slide: the averaged 640 x 640 probabilities),
``probs`` (probabilities at the output size) and ``labels``.

The token embedding of the text tower (49408 x 16) is not stored: it is
regenerated from ``meta['regenerated']`` by :func:`regenerate` (the
generator set the official weights with the same function).
"""
from typing import Dict, List

import numpy as np
import torch

from . import Fixture, ParityReport

__all__ = ['regenerate', 'tiny_model_cfg', 'open_clip_cfg', 'run_fixture', 'RUNS', 'TEMPLATE']

#: The runs of a fixture: stage prefix -> (our ``test_cfg.mode``, the head's ``pad_len``).
RUNS = {'whole': ('catseg_whole', 256), 'slide': ('catseg_slide', 256), 'topk': ('catseg_whole', 2)}
#: PROMPT_ENSEMBLE_TYPE 'single' of the released configs.
TEMPLATE = 'A photo of a {} in the scene'


def regenerate(spec: dict) -> torch.Tensor:
    """A tensor drawn from a seed: ``N(0, std)`` of ``shape``, float16-rounded.

    Args:
        spec (dict): ``shape``, ``seed``, ``std``.
    """
    gen = torch.Generator().manual_seed(int(spec['seed']))
    value = torch.randn(*spec['shape'], generator=gen) * float(spec['std'])
    return value.half().float()


def open_clip_cfg(tiny: dict) -> dict:
    """open_clip model config of the tiny official CLIP (``meta['tiny']``)."""
    return dict(
        embed_dim=tiny['embed_dim'],
        quick_gelu=True,
        vision_cfg=dict(image_size=tiny['image_resolution'], layers=tiny['vision_layers'],
                        width=tiny['vision_width'], patch_size=tiny['vision_patch_size'],
                        head_width=tiny['vision_width'] // tiny['vision_heads']),
        text_cfg=dict(context_length=tiny['context_length'], vocab_size=tiny['vocab_size'],
                      width=tiny['transformer_width'], heads=tiny['transformer_heads'],
                      layers=tiny['transformer_layers']))


def tiny_model_cfg(meta: dict, mode: str = 'catseg_slide') -> dict:
    """Our model config equal to the fixture's official model.

    The released configs (``configs/catseg/*_official_*.py``) with the tiny
    widths of ``meta['tiny']`` / ``meta['head']``.
    """
    tiny, head = meta['tiny'], meta['head']
    clip_cfg = open_clip_cfg(tiny)
    width, embed = tiny['vision_width'], tiny['embed_dim']
    return dict(
        type='CATSegEncoderDecoder',
        backbone=dict(type='CATSegCLIPViT', model_cfg=clip_cfg,
                      input_size=tuple(meta['clip_resolution']),
                      out_indices=tuple(meta['layer_indexes']), last_block_mode='catseg'),
        text_encoder=dict(type='CATSegTextEncoder', model_cfg=clip_cfg, templates=[TEMPLATE],
                          synonyms='first'),
        decode_head=dict(
            type='CATSegHead', in_channels=(width, width, embed), channels=head['hidden_dims'],
            num_templates=1, text_guidance_channels=head['text_guidance_proj_dim'],
            appearance_guidance_channels=head['appearance_guidance_proj_dim'],
            decoder_channels=tuple(head['decoder_dims']),
            decoder_guidance_channels=tuple(head['decoder_guidance_dims']),
            decoder_guidance_proj_channels=tuple(head['decoder_guidance_proj_dims']),
            num_layers=head['num_layers'], num_heads=head['num_heads'],
            window_size=head['window_sizes'], pooling_size=tuple(head['pooling_sizes']),
            test_pooling_size=tuple(head['pooling_sizes']), attention='linear',
            pad_len=head['pad_len'],
            loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True)),
        test_cfg=dict(mode=mode, crop_size=(384, 384), stride=(256, 256), resize_to=(640, 640),
                      global_view=True, size_divisor=32, crop_batch_size=8,
                      resize_class_chunk=1024, return_logits=True))


def _strided(array, steps):
    if not steps:
        return array
    return array[tuple(slice(None, None, int(s)) for s in steps)]


def _tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C), the official token layout."""
    return feature_map.flatten(2).transpose(1, 2)


def _run(model, fixture: Fixture, mode: str) -> Dict[str, np.ndarray]:
    """Our outputs of one run, by official stage name."""
    from mmseg.structures import SegDataSample

    meta = fixture.meta
    head = model.decode_head
    model.test_cfg['mode'] = mode
    out: Dict[str, List] = {}

    def keep(name):
        def hook(_m, _i, o):
            out.setdefault(name, []).append(o)
        return hook

    handles = [model.backbone.register_forward_hook(keep('backbone')),
               model.text_encoder.register_forward_hook(keep('text')),
               head.register_forward_hook(keep('logits'))]
    for i, layer in enumerate(head.spatial_layers):
        handles.append(layer.register_forward_hook(keep(f'spatial{i}')))
    for i, layer in enumerate(head.class_layers):
        handles.append(layer.register_forward_hook(keep(f'aggregation{i}')))
    for i, block in enumerate(head.decoder):
        handles.append(block.register_forward_hook(keep(f'decoder{i + 1}')))
    cost_volume, probabilities = head.cost_volume, model.probabilities

    def cost(*a, **k):
        value = cost_volume(*a, **k)
        out.setdefault('cost', []).append(value)
        return value

    def probs(*a, **k):
        value = probabilities(*a, **k)
        out.setdefault('probs_grid', []).append(value)
        return value

    head.cost_volume, model.probabilities = cost, probs
    image = torch.from_numpy(fixture.inputs['image']).float()
    mean = torch.tensor(meta['clip_pixel_mean']).view(-1, 1, 1)
    std = torch.tensor(meta['clip_pixel_std']).view(-1, 1, 1)
    h, w = image.shape[-2:]
    sample = SegDataSample(metainfo=dict(
        img_shape=(h, w), pad_shape=(h, w), ori_shape=tuple(meta['output_size']),
        padding_size=[0, 0, 0, 0]))
    try:
        with torch.no_grad():
            result = model.predict(((image - mean) / std)[None], [sample])[0]
    finally:
        for handle in handles:
            handle.remove()
        del head.cost_volume, model.probabilities
    guide3, guide7, dense = out['backbone'][0]
    stages = {
        'clip_dense': _tokens(dense), 'clip_block3': _tokens(guide3),
        'clip_block7': _tokens(guide7), 'text': out['text'][0].template_embeds,
        'cost': out['cost'][0], 'logits': out['logits'][0],
        'probs': result.seg_logits.data, 'labels': result.pred_sem_seg.data[0],
        'probs_grid': out['probs_grid'][0],
    }
    for name in list(out):
        if name.startswith(('spatial', 'aggregation', 'decoder')):
            stages[name] = out[name][0]
    return {k: v.detach().cpu().numpy() for k, v in stages.items()}


def run_fixture(fixture: Fixture) -> ParityReport:
    """Converts the official state dict, loads it strictly, compares all stages."""
    from mmovss.converters import catseg_official

    from mmseg.registry import MODELS

    meta = fixture.meta
    state = {k: v.float() if v.is_floating_point() else v for k, v in fixture.state_dict.items()}
    for key, spec in meta.get('regenerated', {}).items():
        state[key] = regenerate(spec)
    converted = catseg_official.convert(state)
    strides = meta.get('strides', {})
    atols = meta.get('atols', {})
    report = ParityReport()
    for run, (mode, pad_len) in RUNS.items():
        names = [k[len(run) + 1:] for k in fixture.stages if k.startswith(run + '/')]
        if not names:
            continue
        cfg = tiny_model_cfg(meta, mode)
        cfg['decode_head']['pad_len'] = pad_len
        model = MODELS.build(cfg)
        model.load_state_dict(converted, strict=True)
        model.eval()
        model.set_vocabulary(list(meta['classes']))
        ours = _run(model, fixture, mode)
        for name in names:
            key = f'{run}/{name}'
            if name not in ours:
                continue  # reported by ParityReport.missing_stages
            value = _strided(ours[name], strides.get(key))
            if name == 'labels':
                report.compare_labels(key, value, fixture.stages[key])
            else:
                report.compare(key, value, fixture.stages[key], atols.get(key, 1e-4))
    return report
