"""FC-CLIP against the official code (``github.com/bytedance/fc-clip``).

The fixture (``tools/parity/fcclip_reference.py``) holds the official
``FCCLIP`` model's state dict at tiny widths (an open_clip ConvNeXt CLIP built
from :data:`TINY_CLIP_CFG` around the timm ConvNeXt :data:`TIMM_MODEL`,
registered by :func:`register_parity_convnext`), one image, and the outputs of
the official ``FCCLIP.forward`` in semantic mode, run twice: with
``ENSEMBLE_ON_VALID_MASK`` True (``gated``) and False (``ungated``, the
released ConvNeXt-L setting), on weights where at least one final mask is
empty at the CLIP resolution. :func:`run_fixture` converts the state dict with
:mod:`mmovss.converters.fcclip_official`, loads it strictly into
:class:`~mmovss.models.segmentors.FCCLIPEncoderDecoder` configured as the
official model (:func:`tiny_model_cfg`) and compares every stage.

The text tower's token embedding (49408 x width) is not stored: it is
regenerated from ``meta['regenerated']`` (:func:`regenerate_tensor`), as the
generator did before running the official model.
"""
import copy
from typing import Dict

import numpy as np
import torch

from . import DEFAULT_ATOL, Fixture, ParityReport

__all__ = ['TIMM_MODEL', 'TINY_CLIP_CFG', 'TINY_DIMS', 'register_parity_convnext',
           'regenerate_tensor', 'official_state_dict', 'tiny_model_cfg', 'run_fixture']

TIMM_MODEL = 'mmovss_parity_convnext'
"""timm ConvNeXt with depths (1, 1, 1, 1), widths :data:`TINY_DIMS`."""

TINY_DIMS = (8, 16, 24, 32)

TINY_CLIP_CFG = dict(
    embed_dim=16,
    vision_cfg=dict(timm_model_name=TIMM_MODEL, timm_model_pretrained=False, timm_pool='',
                    timm_proj='mlp', timm_drop=0.0, timm_drop_path=0.0, image_size=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=16, heads=2, layers=1),
)
"""open_clip model config shaped like ``convnext_large_d_320`` (timm trunk with
the default pool kept, ``mlp`` projection), tiny."""


def register_parity_convnext() -> str:
    """Registers :data:`TIMM_MODEL` with timm (idempotent); returns its name."""
    import timm
    from timm.models import convnext, register_model
    if TIMM_MODEL in timm.list_models(TIMM_MODEL):
        return TIMM_MODEL

    def mmovss_parity_convnext(pretrained=False, **kwargs):
        kwargs.pop('pretrained_cfg', None)
        return convnext._create_convnext(
            'convnext_atto', pretrained=False, depths=(1, 1, 1, 1), dims=TINY_DIMS,
            **kwargs)

    register_model(mmovss_parity_convnext)
    return TIMM_MODEL


def regenerate_tensor(spec: dict) -> torch.Tensor:
    """A tensor not stored in the fixture: ``normal(0, std)`` of ``shape``
    drawn from a CPU ``torch.Generator`` seeded with ``seed``."""
    gen = torch.Generator().manual_seed(int(spec['seed']))
    return torch.randn(tuple(spec['shape']), generator=gen) * float(spec['std'])


def official_state_dict(fixture: Fixture) -> Dict[str, torch.Tensor]:
    """The fixture's official state dict with the regenerated tensors put back."""
    state = dict(fixture.state_dict)
    for key, spec in fixture.meta.get('regenerated', {}).items():
        state[key] = regenerate_tensor(spec)
    return state


def tiny_model_cfg(meta: dict, gated: bool) -> dict:
    """Our FC-CLIP configured as the official model at the fixture's sizes."""
    dims = meta['sizes']
    clip_cfg = copy.deepcopy(meta['clip_cfg'])
    from mmseg.models import SegDataPreProcessor
    return dict(
        type='FCCLIPEncoderDecoder',
        data_preprocessor=SegDataPreProcessor(
            mean=meta['pixel_mean'], std=meta['pixel_std'], bgr_to_rgb=True, pad_val=0,
            seg_pad_val=255, size_divisor=meta['size_divisibility'],
            test_cfg=dict(size_divisor=meta['size_divisibility'])),
        backbone=dict(type='OpenCLIPConvNeXt', model_cfg=clip_cfg, dense_output='features'),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=clip_cfg, templates='vild',
                          synonym_reduction='max'),
        decode_head=dict(
            type='FCCLIPHead', in_channels=list(dims['stage_channels']),
            embed_dim=clip_cfg['embed_dim'], channels=dims['hidden_dim'],
            pixel_decoder=dict(type='MSDeformAttnPixelDecoder', mask_channels=dims['mask_dim'],
                               num_layers=dims['enc_layers'], num_heads=dims['heads'],
                               num_points=dims['enc_points'], ffn_channels=dims['enc_ffn']),
            num_queries=dims['queries'], num_layers=dims['dec_layers'],
            num_heads=dims['heads'], ffn_channels=dims['dec_ffn'],
            seen_vocabulary=list(meta['train_class_names']),
            alpha=meta['alpha'], beta=meta['beta'], ensemble=True,
            ensemble_valid_mask=gated, ov_pooling='features', mask_upsample='logits',
            ov_logit_scale_max=100.0),
        vocabulary=list(meta['class_names']),
        test_cfg=dict(mode='whole', return_logits=True))


def _build(meta: dict, state: Dict[str, torch.Tensor], gated: bool):
    import mmovss  # noqa: F401  (registers the modules)
    from mmovss.converters.fcclip_official import convert

    from mmseg.registry import MODELS
    register_parity_convnext()
    model = MODELS.build(tiny_model_cfg(meta, gated))
    model.load_state_dict(convert(state), strict=True)
    # the temperature is a non-persistent buffer of the text encoder, read from
    # the open_clip model it is built from (the pretrained tag in the released
    # configs): set it from the official CLIP, as that load would
    with torch.no_grad():
        model.text_encoder.logit_scale.copy_(state['backbone.clip_model.logit_scale'].exp())
    return model.eval()


def _predict(model, image_rgb: np.ndarray, ori_shape=None):
    from mmseg.structures import SegDataSample
    img = torch.from_numpy(np.ascontiguousarray(image_rgb[::-1]))  # RGB -> BGR (as loaded)
    h, w = int(img.shape[-2]), int(img.shape[-1])
    ori_shape = tuple(int(x) for x in ori_shape) if ori_shape else (h, w)
    sample = SegDataSample(metainfo=dict(ori_shape=ori_shape, img_shape=(h, w)))
    data = model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), False)
    return data['inputs'], model.predict(data['inputs'], data['data_samples'])[0]


def run_fixture(fixture: Fixture) -> ParityReport:
    """Compares every stage of an FC-CLIP fixture with our model.

    Stages (official names -> ours): ``backbone/*`` (stage maps and the last
    map before the CLIP head), ``text/classifier`` (per-name embeddings),
    ``pixel_decoder/*``, ``decoder/masks_i`` and ``decoder/logits_i`` (every
    prediction set), ``ov/*`` (pooled last-stage features, pooled CLIP
    embeddings after the head, out-of-vocabulary logits, valid masks),
    ``ensemble/{gated,ungated}`` (log-probabilities), ``final/*`` (per-class
    scores at the image size; ``final/original`` at ``meta['original_size']``
    with the official ``sem_seg_postprocess_before_inference``, our
    ``mask_upsample='original'``) and ``labels/*`` (their argmax).
    """
    meta, stages = fixture.meta, fixture.stages
    report = ParityReport()
    atol = float(meta.get('atol', DEFAULT_ATOL))
    model = _build(meta, official_state_dict(fixture), gated=True)
    head = model.decode_head
    for gated in (True, False):
        tag = 'gated' if gated else 'ungated'
        head.ensemble_valid_mask = gated  # the official ENSEMBLE_ON_VALID_MASK
        with torch.no_grad():
            inputs, result = _predict(model, fixture.inputs['image'])
        report.compare(f'final/{tag}', result.seg_logits.data, stages[f'final/{tag}'], atol)
        report.compare_labels(f'labels/{tag}', result.pred_sem_seg.data[0],
                              stages[f'labels/{tag}'])
    if 'final/original' in stages:  # official sem_seg_postprocess_before_inference
        head.ensemble_valid_mask, head.mask_upsample = False, 'original'
        with torch.no_grad():
            _, result = _predict(model, fixture.inputs['image'], meta['original_size'])
        head.mask_upsample = 'logits'
        report.compare('final/original', result.seg_logits.data, stages['final/original'],
                       atol)
        report.compare_labels('labels/original', result.pred_sem_seg.data[0],
                              stages['labels/original'])
    with torch.no_grad():
        class_embeds = model.class_embeddings()
        feats = model.extract_feat(inputs)
        mask_feats, levels = head.pixel_decoder(head._transform_inputs(feats))
        masks, logits = head.forward_sets(feats, class_embeds)
        pooled_feats = head.mask_pooling(feats[-1], masks[-1])
        pooled = head.pooled_clip_embeddings(feats, masks[-1])
        out_logits = head.out_vocab_logits(pooled, class_embeds)
        for gated in (True, False):
            tag = 'gated' if gated else 'ungated'
            head.ensemble_valid_mask = gated
            report.compare(f'ensemble/{tag}',
                           head.ensemble_logits(feats, masks[-1], logits[-1], class_embeds),
                           stages[f'ensemble/{tag}'], atol)
    for i, name in enumerate(meta['backbone_stages']):
        report.compare(f'backbone/{name}', feats[i], stages[f'backbone/{name}'], atol)
    report.compare('backbone/clip_vis_dense', feats[-1], stages['backbone/clip_vis_dense'],
                   atol)
    report.compare('text/classifier', class_embeds.embeds, stages['text/classifier'], atol)
    report.compare('pixel_decoder/mask_features', mask_feats,
                   stages['pixel_decoder/mask_features'], atol)
    for i, level in enumerate(levels):
        report.compare(f'pixel_decoder/multi_scale_{i}', level,
                       stages[f'pixel_decoder/multi_scale_{i}'], atol)
    for i, (m, z) in enumerate(zip(masks, logits)):
        report.compare(f'decoder/masks_{i}', m, stages[f'decoder/masks_{i}'], atol)
        report.compare(f'decoder/logits_{i}', z, stages[f'decoder/logits_{i}'], atol)
    report.compare('ov/pooled_features', pooled_feats, stages['ov/pooled_features'], atol)
    report.compare('ov/pooled_embeddings', pooled, stages['ov/pooled_embeddings'], atol)
    report.compare('ov/logits', out_logits, stages['ov/logits'], atol)
    report.compare_labels('ov/valid', head.valid_masks(feats, masks[-1]), stages['ov/valid'])
    return report
