"""SAN as released by its authors (github.com/MendelXu/SAN) against mmovss.

A fixture of ``tools/parity/san_official_reference.py`` holds the official
``SAN`` state dict (tiny widths, random weights, float16 values), the input
image and the official outputs of these stages (``<i>``: a side-adapter block
of ``DEEP_SUPERVISION_IDXS``):

* ``clip/layer_<k>``: CLIP features after ``k`` blocks (0: ``ln_pre``) that
  feed the side adapter (``FeatureExtractor``), ``clip/cls_token``;
* ``text/classifier``: normalised text embeddings of the class names (vild
  template ensemble) plus the normalised background embedding;
* ``side_adapter/masks_<i>``, ``side_adapter/attn_bias_<i>``: mask logits and
  attention biases (``MLPMaskDecoder``);
* ``rec/attn_bias_pooled_<i>``: the biases max-pooled to the CLIP grid (the
  [SLS]-to-patch block of ``RecWithAttnbiasHead._build_attn_biases``);
* ``rec/mask_embeds_<i>``: the normalised [SLS] embeddings, ``class_logits_<i>``;
* ``semantic``: ``SAN.semantic_inference`` output at the image size,
  ``labels``: its argmax;
* ``resized/semantic``, ``resized/labels``: the same for an image fed at
  another size than its original one (``sem_seg_postprocess`` resizes the
  mask logits to the original size before the sigmoid).

:func:`run_fixture` converts the state dict with
:mod:`mmovss.converters.san_official`, loads it strictly into our
``MaskClassificationEncoderDecoder`` (``SANCLIPViT`` + ``SANHead``) built from
:func:`tiny_config` and compares every stage.
"""
import math
from typing import Sequence

import numpy as np
import torch

from . import Fixture, ParityReport

__all__ = ['CLASS_NAMES', 'TINY', 'IMAGES', 'RESIZED', 'tiny_config', 'build_model',
           'predict_resized', 'run_fixture']

CLASS_NAMES = ['cat', 'parking meter', 'blue sky above', 'paved road, route',
               'one tall green pine tree']
"""The vocabulary of the generated fixtures (1 to 5 tokens: their text
embeddings differ through the end-of-text position even with random weights).
``'paved road, route'`` is one name with a comma, as detectron2's ADE-150
``'road, route'``: the official code encodes it as ONE prompt (our
``text_encoder.whole_names=True``)."""

TINY = dict(
    clip_cfg=dict(
        embed_dim=16, quick_gelu=True,
        vision_cfg=dict(image_size=32, layers=6, width=16, patch_size=8, head_width=8),
        text_cfg=dict(context_length=77, vocab_size=49408, width=16, heads=2, layers=2)),
    start_block=4,
    fusion_map=[[0, 0], [2, 1], [3, 2], [4, 3]],
    side_adapter=dict(embed_dims=16, patch_size=16, num_queries=12, num_layers=4,
                      num_heads=2, pretrain_grid=4,
                      decoder=dict(embed_channels=16, mlp_channels=16)),
    deep_supervision_idxs=[3, 4],
)
"""Tiny sizes of the generator's official model (and of ours). ``fusion_map``
lists ``[CLIP layer, side-adapter block]`` pairs (official ``FUSION_MAP``
``'src->dst'``; CLIP layer ``k`` = after ``k`` blocks, 0 = ``ln_pre``)."""

MEAN = [122.7709383, 116.7460125, 104.09373615]
STD = [68.5005327, 66.6321579, 70.32316305]


def tiny_config(tiny: dict, class_names: Sequence[str], clip_resolution: float,
                size_divisibility: int) -> dict:
    """Our model config with the official model's (tiny) sizes and settings.

    The official-behaviour options are those of ``configs/san/
    san-official_*``: ``patch_remainder='crop'``,
    ``side_adapter.pos_embed_resize='tokens'``, the template set ``vild``,
    whole names as one prompt (``text_encoder.whole_names``) and the
    official final resize order (``MaskClassificationEncoderDecoder`` with
    ``decode_head.mask_upsample='original'``).
    """
    sources = [src for src, _ in tiny['fusion_map']]
    targets = [dst for _, dst in tiny['fusion_map']]
    if sorted(targets) != targets or sorted(sources) != sources:
        raise ValueError(f'fusion_map {tiny["fusion_map"]} must increase in both columns.')
    if sources[-1] != tiny['start_block']:
        raise ValueError('the last fused CLIP layer must be FEATURE_LAST_LAYER_IDX '
                         f'({tiny["start_block"]}), got {sources[-1]}.')
    clip = tiny['clip_cfg']
    side = dict(tiny['side_adapter'], fusion_index=tuple(targets), pos_embed_resize='tokens')
    return dict(
        type='MaskClassificationEncoderDecoder',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=MEAN, std=STD, bgr_to_rgb=True, pad_val=0,
            seg_pad_val=255, size_divisor=size_divisibility,
            test_cfg=dict(size_divisor=size_divisibility)),
        backbone=dict(type='SANCLIPViT', model_cfg=clip,
                      out_indices=tuple(s - 1 for s in sources if s > 0),
                      out_origin=sources[0] == 0, encoder_resolution=clip_resolution,
                      patch_remainder='crop'),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=clip, templates='vild',
                          whole_names=True),
        decode_head=dict(
            type='SANHead', clip=dict(model_cfg=clip), start_block=tiny['start_block'],
            side_adapter=side, deep_supervision_idxs=tuple(tiny['deep_supervision_idxs']),
            criterion=dict(type='MaskClassificationLoss', num_points=64),
            mask_upsample='original'),
        vocabulary=list(class_names),
        test_cfg=dict(mode='whole', return_logits=True))


def build_model(fixture: Fixture):
    """Our model for a fixture, with its converted official weights (strict)."""
    import mmovss  # noqa: F401  (registers the modules)
    from mmovss.converters.san_official import convert

    from mmseg.registry import MODELS
    meta = fixture.meta
    cfg = tiny_config(meta['tiny'], meta['class_names'],
                      meta['official_config']['CLIP_RESOLUTION'],
                      meta['official_config']['SIZE_DIVISIBILITY'])
    cfg['data_preprocessor'] = MODELS.build(cfg['data_preprocessor'])
    model = MODELS.build(cfg)
    model.load_state_dict(convert(fixture.state_dict), strict=True)
    return model.eval()


RESIZED = ('resized_image', 'resized/')
"""The input fed at another size than its original one (meta
``resized_image_original_size``) and the prefix of its stages (``semantic``,
``labels`` at the original size): the official
``SEM_SEG_POSTPROCESS_BEFORE_INFERENCE`` order, our
``mask_upsample='original'``."""

IMAGES = (('image', ''), ('tokens_grid_image', 'tokens_grid/'))
"""Fixture inputs and the prefix of their stages: the main image, and one
whose side-adapter grid has the pretraining grid's number of patches in
another shape (the official code then keeps the position embedding as it is,
our ``pos_embed_resize='tokens'``)."""


def run_fixture(fixture: Fixture) -> ParityReport:
    """Compares every stage of one fixture (see the module docstring).

    Tolerance: 1e-4 absolute on every float stage (CPU float32 on both sides,
    the same float16-valued weights); labels >= 99.9% equal.
    """
    model = build_model(fixture)
    report = ParityReport()
    ours_scale = float(model.text_encoder.logit_scale)
    if not math.isclose(math.log(ours_scale), fixture.meta['logit_scale'], abs_tol=1e-5):
        raise AssertionError(f'CLIP temperature differs: official log-scale '
                             f'{fixture.meta["logit_scale"]}, ours {math.log(ours_scale)}')
    for name, prefix in IMAGES:
        if name in fixture.inputs:
            _compare_image(model, fixture, fixture.inputs[name], prefix, report)
    if RESIZED[0] in fixture.inputs:
        _compare_resized(model, fixture, report)
    return report


def predict_resized(model, image: np.ndarray, original_hw: Sequence[int]):
    """Our prediction for a (3, h, w) RGB network input of an image whose
    original size is ``original_hw`` (``ori_shape`` != ``img_shape``)."""
    from mmseg.structures import SegDataSample
    image = torch.from_numpy(image)
    h, w = image.shape[-2:]
    sample = SegDataSample(metainfo=dict(ori_shape=tuple(original_hw), img_shape=(h, w)))
    data = model.data_preprocessor(dict(inputs=[image.flip(0)], data_samples=[sample]), False)
    with torch.no_grad():
        return model.predict(data['inputs'], data['data_samples'])[0]


def _compare_resized(model, fixture: Fixture, report: ParityReport) -> None:
    """The final scores and labels at the original size of the resized image."""
    name, prefix = RESIZED
    result = predict_resized(model, fixture.inputs[name],
                             fixture.meta['resized_image_original_size'])
    report.compare(prefix + 'semantic', result.seg_logits.data,
                   fixture.stages[prefix + 'semantic'])
    report.compare_labels(prefix + 'labels', result.pred_sem_seg.data[0],
                          np.asarray(fixture.stages[prefix + 'labels']))


def _compare_image(model, fixture: Fixture, image: np.ndarray, prefix: str,
                   report: ParityReport) -> None:
    """Runs our model on one (3, H, W) RGB uint8 image; compares its stages."""
    from mmovss.models.utils.mask_classification import open_vocab_class_logits

    from mmseg.structures import SegDataSample
    stages = {k[len(prefix):]: v for k, v in fixture.stages.items() if k.startswith(prefix)}

    def compare(name, ours):
        report.compare(prefix + name, ours, stages[name])

    image = torch.from_numpy(image)
    h, w = image.shape[-2:]
    sample = SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
    data = model.data_preprocessor(dict(inputs=[image.flip(0)], data_samples=[sample]), False)
    inputs, samples = data['inputs'], data['data_samples']
    tiny = fixture.meta['tiny']
    head = model.decode_head
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        for (src, _), ours in zip(tiny['fusion_map'], feats[1:-1]):
            compare(f'clip/layer_{src}', ours)
        compare('clip/cls_token', feats[-1])
        class_embeds = model.class_embeddings()
        void = torch.nn.functional.normalize(head.void_embed, dim=-1)
        compare('text/classifier', torch.cat([class_embeds.embeds, void]))
        idxs = tiny['deep_supervision_idxs']
        image_in, fusion_maps, patch_map, cls_token = head.split_inputs(feats)
        masks, biases = head.side_adapter(image_in, fusion_maps, output_layers=idxs)
        grid = tuple(patch_map.shape[-2:])
        for idx, mask, bias in zip(idxs, masks, biases):
            compare(f'side_adapter/masks_{idx}', mask)
            compare(f'side_adapter/attn_bias_{idx}', bias[0])
            pooled = head.recognizer.format_bias(bias[0], grid)
            compare(f'rec/attn_bias_pooled_{idx}', pooled.reshape(*pooled.shape[:3], *grid))
            embeds = head.recognizer(bias, patch_map, cls_token)
            compare(f'rec/mask_embeds_{idx}', embeds)
            compare(f'class_logits_{idx}',
                    open_vocab_class_logits(embeds, class_embeds, head.void_embed,
                                            head.logit_scale))
        result = model.predict(inputs, samples)[0]
    compare('semantic', result.seg_logits.data)
    report.compare_labels(prefix + 'labels', result.pred_sem_seg.data[0],
                          np.asarray(stages['labels']))
