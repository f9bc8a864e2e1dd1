"""OVSeg against its official code (fixtures of ``tools/parity/ovseg_reference.py``).

Two kinds of fixture (``meta['kind']``):

* ``'model'``: the whole official ``OVSeg`` (DeepLab ResNet, MaskFormer head,
  mask-adapted CLIP) at tiny widths. Its state dict is converted with
  :mod:`mmovss.converters.ovseg_official` and loaded strictly into a
  :class:`~mmovss.models.segmentors.TwoStageEncoderDecoder` with mmseg's
  ``ResNetV1c`` (DeepLab stem width, ``multi_grid``), an
  :class:`~mmovss.models.decode_heads.OVSegHead` and the CLIP text encoder,
  with the options of the released configs (``configs/ovseg/ovseg-official_*``).
  Compared: backbone maps, pixel-decoder mask features, every decoder
  layer's mask and class logits, the text embeddings (with the normalised
  non-object embedding), which proposals CLIP classifies, the masked-crop
  CLIP embeddings and logits, the ensembled class probabilities, the
  per-pixel scores of the head and of the whole segmentor, and the labels.
* ``'backbone'``: an official backbone alone (Swin), its four output maps.

The fixture stores the CLIP token embedding as a row-sparse tensor (only the
rows the prompts use are non-zero, as in the official run); it is made dense
before conversion.
"""
from typing import Dict

import torch
import torch.nn.functional as F

from . import Fixture, ParityReport

__all__ = ['run_fixture', 'tiny_model_cfg', 'tiny_backbone_cfg', 'dense_state']


def dense_state(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The fixture's state dict with its sparse tensors made dense."""
    return {k: v.to_dense() if v.is_sparse else v for k, v in state.items()}


def tiny_backbone_cfg(meta: dict) -> dict:
    """Our backbone config for the fixture's official backbone."""
    b = meta['backbone_cfg']
    if meta['backbone'] == 'swin':
        return dict(type='SwinTransformer', pretrain_img_size=b['PRETRAIN_IMG_SIZE'],
                    embed_dims=b['EMBED_DIM'], patch_size=4, window_size=b['WINDOW_SIZE'],
                    mlp_ratio=4, depths=b['DEPTHS'], num_heads=b['NUM_HEADS'],
                    strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), qkv_bias=True,
                    qk_scale=None, patch_norm=True, drop_rate=0.0, attn_drop_rate=0.0,
                    drop_path_rate=0.0, use_abs_pos_embed=False)
    if b['RES2_OUT_CHANNELS'] % 4 or b['RES2_OUT_CHANNELS'] // 4 != b['WIDTH_PER_GROUP']:
        raise ValueError('ResNetV1c needs RES2_OUT_CHANNELS = 4 x WIDTH_PER_GROUP (bottleneck '
                         f'expansion 4), got {b}.')
    return dict(type='ResNetV1c', depth=b['DEPTH'], stem_channels=b['STEM_OUT_CHANNELS'],
                base_channels=b['WIDTH_PER_GROUP'], multi_grid=(1, 2, 4),
                out_indices=(0, 1, 2, 3), norm_cfg=dict(type='BN', requires_grad=False),
                norm_eval=True, style='pytorch')


def tiny_model_cfg(meta: dict) -> dict:
    """Our segmentor config with the fixture's tiny widths and the released options."""
    c, head, mf = meta['clip_cfg'], meta['head_cfg'], meta['mask_former_cfg']
    clip_cfg = dict(
        embed_dim=c['embed_dim'],
        vision_cfg=dict(image_size=c['image_resolution'], layers=c['vision_layers'],
                        width=c['vision_width'], patch_size=c['vision_patch_size'],
                        head_width=meta['clip_vision_head_width']),
        text_cfg=dict(context_length=c['context_length'], vocab_size=c['vocab_size'],
                      width=c['transformer_width'], heads=c['transformer_heads'],
                      layers=c['transformer_layers']))
    res2 = meta['backbone_cfg']['RES2_OUT_CHANNELS']
    return dict(
        type='TwoStageEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=meta['pixel_mean'],
                               std=meta['pixel_std'], bgr_to_rgb=False, size_divisor=32),
        vocabulary=list(meta['class_names']),
        backbone=tiny_backbone_cfg(meta),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=clip_cfg, quick_gelu=True,
                          templates=meta['text_templates']),
        decode_head=dict(
            type='OVSegHead', in_channels=[res2, res2 * 2, res2 * 4, res2 * 8],
            embed_dim=head['EMBEDDING_DIM'], channels=head['CONVS_DIM'],
            mask_channels=head['MASK_DIM'], query_channels=mf['HIDDEN_DIM'],
            num_queries=mf['NUM_OBJECT_QUERIES'], num_layers=mf['DEC_LAYERS'],
            num_heads=mf['NHEADS'], ffn_channels=mf['DIM_FEEDFORWARD'], dropout=0.1,
            temperature=0.01, embed_layers=2, embed_channels=head['EMBED_HIDDEN_DIM'],
            ensemble_weight=meta['ensemble_weight'], upsample_masks=True, norm_groups=32,
            region_classifier=dict(
                type='RegionCLIPClassifier',
                clip=dict(type='OpenCLIPViT', model_cfg=clip_cfg, quick_gelu=True),
                crop_size=c['image_resolution'], mask_threshold=meta['mask_thr'],
                mask_fill=meta['mask_fill'], crop_style='cropmask',
                mask_prompt_depth=meta['mask_prompt_depth'], crop_resize='slice',
                logit_scale=100.0, mask_prompt_at_embed=True),
            criterion=dict(type='MaskClassificationLoss', num_points=64)),
        train_cfg=dict(), test_cfg=dict(mode='whole'))


def _run_backbone(fixture: Fixture, report: ParityReport) -> None:
    from mmovss.converters.ovseg_official import convert_d2_swin, convert_deeplab_resnet

    from mmseg.registry import MODELS
    meta = fixture.meta
    backbone = MODELS.build(tiny_backbone_cfg(meta))
    backbone.eval()  # mmseg's SwinTransformer.train returns None
    convert = convert_d2_swin if meta['backbone'] == 'swin' else convert_deeplab_resnet
    state = convert(dense_state(fixture.state_dict), 'backbone.')
    missing = [k for k in backbone.state_dict() if k not in state]
    if meta['backbone'] == 'swin':  # a constant of the window size, not stored
        for key in [k for k in missing if k.endswith('relative_position_index')]:
            state[key] = backbone.state_dict()[key]
    backbone.load_state_dict(state, strict=True)
    img = torch.from_numpy(fixture.inputs['image']).float()
    mean = torch.tensor(meta['pixel_mean']).view(3, 1, 1)
    std = torch.tensor(meta['pixel_std']).view(3, 1, 1)
    with torch.no_grad():
        feats = backbone(((img - mean) / std)[None])
    for i, feat in enumerate(feats):
        report.compare(f'backbone/res{i + 2}', feat[0], fixture.stages[f'backbone/res{i + 2}'])


def run_fixture(fixture: Fixture) -> ParityReport:
    """Compares every stage of one OVSeg fixture (default tolerance, 1e-4)."""
    import mmovss  # noqa: F401  registers the modules
    from mmovss.converters.ovseg_official import convert

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    report = ParityReport()
    if fixture.meta.get('kind') == 'backbone':
        _run_backbone(fixture, report)
        return report
    meta, stages = fixture.meta, fixture.stages
    model = MODELS.build(tiny_model_cfg(meta)).eval()
    model.load_state_dict(convert(dense_state(fixture.state_dict)), strict=True)
    head = model.decode_head
    img = torch.from_numpy(fixture.inputs['image']).float()[None]
    mean = torch.tensor(meta['pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(meta['pixel_std']).view(1, 3, 1, 1)
    x = (img - mean) / std
    with torch.no_grad():
        feats = model.backbone(x)
        for i, feat in enumerate(feats):
            report.compare(f'backbone/res{i + 2}', feat[0], stages[f'backbone/res{i + 2}'])
        report.compare('pixel_decoder/mask_features',
                       head.mask_decoder.pixel_decoder(list(feats))[0],
                       stages['pixel_decoder/mask_features'])
        class_embeds = model.class_embeddings()
        text = torch.cat([class_embeds.embeds, F.normalize(head.void_embed, dim=-1)])
        report.compare('text/class_embeddings', text, stages['text/class_embeddings'])
        inputs = tuple(feats) + (img, )  # the head's image: pixel values, as the official
        masks, logits = head.forward_sets(inputs, class_embeds)
        for i, (m, c) in enumerate(zip(masks, logits)):
            report.compare(f'decoder/mask_logits_{i}', m[0], stages[f'decoder/mask_logits_{i}'])
            report.compare(f'decoder/class_logits_{i}', c[0],
                           stages[f'decoder/class_logits_{i}'])
        up = F.interpolate(masks[-1], size=img.shape[-2:], mode='bilinear',
                           align_corners=False)
        classifier = head.region_classifier
        clip_logits, valid = classifier(img, up, class_embeds)
        report.compare_labels('clip/valid', valid[0], stages['clip/valid'])
        official_valid = torch.from_numpy(stages['clip/valid'])
        if bool((valid[0] == official_valid).all()):
            bin_masks = up[0].sigmoid() > classifier.mask_threshold
            embeds = classifier.region_embeddings(img[0], bin_masks[valid[0]])
            report.compare('clip/region_embeddings', embeds, stages['clip/region_embeddings'])
            report.compare('clip/logits', clip_logits[0, valid[0]], stages['clip/logits'])
        probs = head.class_probs(inputs, up, logits[-1], class_embeds)
        report.compare('ensemble/class_probs', probs[0], stages['ensemble/class_probs'])
        scores = head.forward(inputs, class_embeds)[0]
        report.compare('semantic/sem_seg', scores, stages['semantic/sem_seg'])
        # the whole segmentor: image through the data preprocessor's normalisation
        seg = model.encode_decode(x, [dict(img_shape=tuple(img.shape[-2:]),
                                           ori_shape=tuple(img.shape[-2:]),
                                           pad_shape=tuple(img.shape[-2:]))])[0]
        report.compare('semantic/sem_seg_segmentor', seg, stages['semantic/sem_seg'])
        report.compare_labels('semantic/labels', seg.argmax(0), stages['semantic/labels'])
    return report
