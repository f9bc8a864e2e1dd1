"""ZegFormer against its official code (fixture of ``tools/parity/zegformer_reference.py``).

The official state dict is converted with
:mod:`mmovss.converters.zegformer_official` and loaded strictly into our
:class:`~mmovss.models.backbones.D2ResNet` and
:class:`~mmovss.models.decode_heads.ZegFormerHead` built with the fixture's
tiny widths and the official model's options (unnormalised "no object"
embedding, masks upsampled to the image, ZegFormer's boxes, mask-then-crop,
every query classified, 32 GroupNorm groups, calibration 0.1 on seen
classes). The CLIP text tower is not in the fixture (its 49408-row token
table would exceed the size budget): the text features the official code
computed (segment branch: ``text_features``, CLIP branch:
``text_features_clip``) are fed as :class:`ClassEmbeddings`. Compared: the
backbone maps, the pixel decoder's mask features, every decoder layer's
query states, segment embeddings, class logits and mask logits, the CLIP
crop embeddings and logits, the fused class probabilities, the calibrated
per-pixel scores and the labels.
"""
import math
from typing import Dict

import torch
import torch.nn.functional as F

from . import DEFAULT_ATOL, Fixture, ParityReport, magnitude_atol

__all__ = ['run_fixture', 'build_tiny_model']


def _tiny_cfg(meta: dict) -> Dict[str, dict]:
    tiny, values = meta['tiny'], meta['values']
    res2 = tiny['res2']
    seen = [c for c in meta['classes'] if c not in meta['unseen']]
    clip_cfg = dict(
        embed_dim=512,
        vision_cfg=dict(image_size=224, layers=tiny['clip_layers'], width=tiny['clip_width'],
                        patch_size=tiny['clip_patch'],
                        head_width=tiny['clip_width'] // tiny['clip_heads']),
        text_cfg=dict(context_length=77, vocab_size=49408, width=8, heads=2, layers=1))
    backbone = dict(type='D2ResNet', depth=meta['depth'], stem_channels=tiny['stem'],
                    res2_channels=res2, width_per_group=tiny['width_per_group'],
                    stride_in_1x1=False, norm='FrozenBN')
    head = dict(
        type='ZegFormerHead', in_channels=[res2, res2 * 2, res2 * 4, res2 * 8],
        embed_dim=512, channels=tiny['convs_dim'], mask_channels=tiny['mask_dim'],
        query_channels=tiny['hidden'], num_queries=tiny['queries'],
        num_layers=tiny['dec_layers'], num_heads=tiny['heads'], ffn_channels=tiny['ffn'],
        dropout=0.1, temperature=values['temperature'], mode='fusion',
        fusion_lambda=values['fusion_lambda'], seen_vocabulary=seen,
        calibration=values['gzero_calibrate'], normalize_void=False, upsample_masks=True,
        norm_groups=32,
        region_classifier=dict(
            type='RegionCLIPClassifier',
            clip=dict(type='OpenCLIPViT', model_cfg=clip_cfg, quick_gelu=True),
            crop_size=224, mask_fill='mean', crop_style=values['clip_cls_style'],
            box_style='zegformer', mask_before_crop=True, classify_empty=True,
            clip_mean=values['clip_pixel_mean'], clip_std=values['clip_pixel_std']))
    return dict(backbone=backbone, decode_head=head)


def build_tiny_model(meta: dict):
    """(backbone, head) of the fixture's sizes, in eval mode."""
    import mmovss  # noqa: F401  (registers the modules)

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = _tiny_cfg(meta)
    return MODELS.build(cfg['backbone']).eval(), MODELS.build(cfg['decode_head']).eval()


def _load_strict(module, state: dict, prefix: str) -> None:
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(part, strict=True)


def run_fixture(fixture: Fixture) -> ParityReport:
    """Our model on the fixture's input, compared stage by stage."""
    from mmovss.converters.zegformer_official import convert, official_temperature
    from mmovss.models.text_encoders.class_embeddings import ClassEmbeddings
    from mmovss.vocab import Vocabulary

    meta, inputs, stages = fixture.meta, fixture.inputs, fixture.stages
    state = convert(fixture.state_dict)
    backbone, head = build_tiny_model(meta)
    others = sorted(k for k in state if not k.startswith(('backbone.', 'decode_head.')))
    if others:
        raise AssertionError(f'converted keys outside backbone/decode_head: {others[:5]}')
    _load_strict(backbone, state, 'backbone.')
    _load_strict(head, state, 'decode_head.')
    head.temperature = official_temperature(fixture.state_dict)

    vocab = Vocabulary.build(list(meta['classes']))
    index = torch.arange(len(meta['classes']))
    clip_scale = fixture.state_dict['sem_seg_head.predictor.clip_model.logit_scale']
    class_embeds = ClassEmbeddings(torch.from_numpy(inputs['text_features']), index, vocab)
    region_embeds = ClassEmbeddings(torch.from_numpy(inputs['text_features_clip']), index,
                                    vocab, logit_scale=clip_scale.float().exp().reshape(()))
    values = meta['values']
    image = torch.from_numpy(inputs['image'])[None].float()
    mean = torch.tensor(values['pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(values['pixel_std']).view(1, 3, 1, 1)
    report = ParityReport()
    with torch.no_grad():
        feats = backbone((image - mean) / std)
        for name, feat in zip(('res2', 'res3', 'res4', 'res5'), feats):
            report.compare(f'backbone/{name}', feat, stages[f'backbone/{name}'], DEFAULT_ATOL)
        pixel, masks, states = head.mask_decoder(feats)
        report.compare('pixel_decoder/mask_features', pixel,
                       stages['pixel_decoder/mask_features'])
        for i, (mask, state_i) in enumerate(zip(masks, states)):
            base = f'decoder/layer{i}/'
            report.compare(base + 'queries', state_i, stages[base + 'queries'])
            report.compare(base + 'segment_embeddings', head.segment_proj(state_i),
                           stages[base + 'segment_embeddings'])
            report.compare(base + 'class_logits', head.seg_logits(state_i, class_embeds),
                           stages[base + 'class_logits'])
            # logits of order 10: the tolerance scales with them (measured
            # 1.6e-4 on an Intel CPU against the AMD-made fixture)
            report.compare(base + 'mask_logits', mask, stages[base + 'mask_logits'],
                           magnitude_atol(stages[base + 'mask_logits']))
        head_inputs = list(feats) + [image]
        up = F.interpolate(masks[-1], size=image.shape[-2:], mode='bilinear',
                           align_corners=False)
        binary = up.sigmoid() > head.region_classifier.mask_threshold
        report.compare('clip/crop_embeddings',
                       head.region_classifier.region_embeddings(image[0], binary[0]),
                       stages['clip/crop_embeddings'])
        seg_logits = head.seg_logits(states[-1], class_embeds)
        clip_logits, _ = head.region_logits(head_inputs, up, region_embeds)
        report.compare('clip/logits', torch.cat([clip_logits, seg_logits[..., -1:]], -1)[0],
                       stages['clip/logits'])
        probs = head.class_probs(head_inputs, up, seg_logits, class_embeds, region_embeds)
        report.compare('ensemble/probs', probs[0], stages['ensemble/probs'])
        scores = head(head_inputs, class_embeds, region_embeds)
        report.compare('semantic/scores', scores[0], stages['semantic/scores'])
        report.compare_labels('semantic/labels', scores[0].argmax(0),
                              stages['semantic/labels'].astype('int64'))
    if not math.isclose(head.temperature, values['temperature'], rel_tol=1e-5):
        raise AssertionError(f'predictor.logit_scale gives temperature {head.temperature}, '
                             f'the config says {values["temperature"]}')
    return report
