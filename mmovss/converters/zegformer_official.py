"""ZegFormer checkpoints as released by its authors -> mmovss.

The released files (``zegformer_R101_bs32_60k_vit16_coco-stuff.pth``,
``zegformer_R50_bs32_60k_vit16_coco-stuff.pth``, the VOC and ADE-847 models;
Google Drive folder of the README of github.com/dingjiansw101/ZegFormer)
hold detectron2's ``{'model': state_dict, ...}`` of ``MaskFormer``
(``mask_former/mask_former_model.py``) with the ``ZegFormerHead`` /
``TransformerZeroshotPredictor``:

* ``backbone.*``: detectron2's ResNet (basic stem, FrozenBN) ->
  :class:`~mmovss.models.backbones.D2ResNet` (same names,
  :func:`~mmovss.converters.d2_resnet.d2_resnet_to_mmovss`);
* ``sem_seg_head.pixel_decoder.*``: MaskFormer's ``BasePixelDecoder``
  (``adapter_i`` lateral 1x1 convs, ``layer_i`` output 3x3 convs, ``layer_4``
  the top, ``mask_features``) -> ``decode_head.mask_decoder.pixel_decoder``;
* ``sem_seg_head.predictor.*``: the DETR decoder (``transformer.decoder``),
  ``query_embed``, ``input_proj``, ``mask_embed``, the segment projection
  ``projection_layer`` and the "no object" embedding ``bg_feature`` ->
  ``decode_head.mask_decoder.query_decoder`` / ``mask_embed``,
  ``decode_head.segment_proj``, ``decode_head.void_embed``;
* ``sem_seg_head.predictor.clip_model.*`` - only in the state dict of a model
  built with ``CLIP_CLASSIFICATION True`` (the gzss evaluation configs); the
  released training checkpoints have no CLIP, which comes from OpenAI's
  ViT-B/16 (our configs load it with ``pretrained='openai'``). When present:
  ``visual.*`` -> ``decode_head.region_classifier.clip.visual.*`` and the
  text tower -> ``text_encoder.tower.*`` (each group complete or absent).

Every key is mapped or dropped with the reason in :data:`DROPPED`; anything
else, or a missing key, is refused::

    python tools/model_converters/zegformer_official_to_mmovss.py \\
        zegformer_R101_bs32_60k_vit16_coco-stuff.pth ours.pth
"""
import math
import re
from typing import Dict, List, Mapping, Optional

import torch

from .common import ConversionError, check_accounted, unwrap_state_dict
from .d2_resnet import D2_RESNET_KEY, d2_resnet_to_mmovss

__all__ = ['FORMAT', 'DROPPED', 'matches', 'convert', 'convert_key', 'official_temperature',
           'conversion_meta', 'CLIP_VISUAL_KEYS', 'CLIP_TEXT_KEYS', 'clip_keys']

FORMAT = 'zegformer_official'
_NAME = 'ZegFormer (official)'

#: Parts of our model the released files do not hold (they ship without CLIP):
#: the strict loader lets them be missing, and the config's ``pretrained='openai'``
#: towers fill them (mmovss.apis.released_weights).
PRETRAINED_PREFIXES = ('decode_head.region_classifier.clip.', 'text_encoder.tower.',
                       'decode_head.region_text_encoder.tower.')

HEAD = 'sem_seg_head.'
PRED = 'sem_seg_head.predictor.'
CLIP = 'sem_seg_head.predictor.clip_model.'

#: Official keys (regex) dropped on purpose, with the reason.
DROPPED: Dict[str, str] = {
    '^' + re.escape(PRED) + r'logit_scale$':
        'log(1 / TEMPERATURE) of the segment branch, a fixed parameter (requires_grad '
        "False); ours is decode_head.temperature (0.01 in every released config; "
        'official_temperature() reads it).',
    '^' + re.escape(CLIP) + r'logit_scale$':
        "CLIP's temperature of the image branch; ours is the text encoder's (the same "
        'CLIP weights).',
    r'^criterion\.empty_weight$':
        'the training loss class weights (no-object weight 0.1), a buffer rebuilt from '
        'the criterion config (MaskClassificationLoss.no_object_weight).',
    r'^(clip_)?pixel_(mean|std)$':
        "normalisation constants (non-persistent in the released code); the config's "
        'data_preprocessor / region classifier hold them.',
    r'^backbone\..*num_batches_tracked$':
        'BatchNorm step counter; detectron2 FrozenBN (ours) has none.',
}

_PIXEL = [
    (r'^adapter_(\d+)\.weight$', lambda m: f'lateral.{int(m[1]) - 1}.0.weight'),
    (r'^adapter_(\d+)\.norm\.(weight|bias)$', lambda m: f'lateral.{int(m[1]) - 1}.1.{m[2]}'),
    (r'^layer_(\d+)\.weight$', None),
    (r'^layer_(\d+)\.norm\.(weight|bias)$', None),
    (r'^mask_features\.(weight|bias)$', lambda m: f'mask_proj.{m[1]}'),
]
_LAYER = {'self_attn': 'self_attn', 'multihead_attn': 'cross', 'linear1': 'ffn.0',
          'linear2': 'ffn.3', 'norm1': 'norms.0', 'norm2': 'norms.1', 'norm3': 'norms.2'}
_ATTN = ('in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias')

#: OpenAI-CLIP visual keys (after ``clip_model.visual.``), non-block part.
CLIP_VISUAL_KEYS = ('class_embedding', 'positional_embedding', 'proj', 'conv1.weight',
                    'ln_pre.weight', 'ln_pre.bias', 'ln_post.weight', 'ln_post.bias')
#: OpenAI-CLIP text keys (after ``clip_model.``), non-block part.
CLIP_TEXT_KEYS = ('token_embedding.weight', 'positional_embedding', 'ln_final.weight',
                  'ln_final.bias', 'text_projection')
_BLOCK_KEYS = ('attn.in_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight',
               'attn.out_proj.bias', 'ln_1.weight', 'ln_1.bias', 'mlp.c_fc.weight',
               'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias', 'ln_2.weight',
               'ln_2.bias')


def _dropped(key: str) -> bool:
    return any(re.search(pattern, key) for pattern in DROPPED)


def _num_levels(keys) -> int:
    """Pixel-decoder levels: the highest ``layer_i`` (its top, the coarsest map)."""
    levels = [int(m[1]) for k in keys
              for m in [re.match(re.escape(HEAD) + r'pixel_decoder\.layer_(\d+)\.', k)] if m]
    return max(levels) if levels else 0


def convert_key(key: str, num_levels: int = 4) -> Optional[str]:
    """The mmovss key of one official key; None if it has no place here.

    Args:
        key (str): Official key.
        num_levels (int): Backbone maps of the pixel decoder (``layer_{n}`` is
            its top conv).
    """
    if key.startswith('backbone.'):
        return key if D2_RESNET_KEY.match(key[len('backbone.'):]) and \
            not key.endswith('num_batches_tracked') else None
    if key.startswith(HEAD + 'pixel_decoder.'):
        rest = key[len(HEAD + 'pixel_decoder.'):]
        out = 'decode_head.mask_decoder.pixel_decoder.'
        m = re.match(r'^layer_(\d+)\.(weight|norm\.(weight|bias))$', rest)
        if m:
            i = int(m[1])
            if not 1 <= i <= num_levels:
                return None
            name = 'top' if i == num_levels else f'output.{i - 1}'
            return out + name + ('.0.weight' if m[2] == 'weight' else f'.1.{m[3]}')
        for pattern, fn in _PIXEL:
            m = re.match(pattern, rest)
            if m and fn is not None:
                return out + fn(m)
        return None
    if key.startswith(CLIP):
        rest = key[len(CLIP):]
        if rest.startswith('visual.'):
            sub = rest[len('visual.'):]
            block = re.match(r'^transformer\.resblocks\.\d+\.(.+)$', sub)
            if sub in CLIP_VISUAL_KEYS or (block and block[1] in _BLOCK_KEYS):
                return 'decode_head.region_classifier.clip.' + rest
            return None
        block = re.match(r'^transformer\.resblocks\.\d+\.(.+)$', rest)
        if rest in CLIP_TEXT_KEYS or (block and block[1] in _BLOCK_KEYS):
            return 'text_encoder.tower.' + rest
        return None
    if not key.startswith(PRED):
        return None
    rest = key[len(PRED):]
    dec = 'decode_head.mask_decoder.query_decoder.'
    simple = {'query_embed.weight': dec + 'query_pos.weight',
              'input_proj.weight': dec + 'input_proj.weight',
              'input_proj.bias': dec + 'input_proj.bias',
              'transformer.decoder.norm.weight': dec + 'norm.weight',
              'transformer.decoder.norm.bias': dec + 'norm.bias',
              'projection_layer.weight': 'decode_head.segment_proj.layers.0.weight',
              'projection_layer.bias': 'decode_head.segment_proj.layers.0.bias',
              'bg_feature': 'decode_head.void_embed'}
    if rest in simple:
        return simple[rest]
    m = re.match(r'^mask_embed\.layers\.(\d+)\.(weight|bias)$', rest)
    if m:
        return f'decode_head.mask_decoder.mask_embed.layers.{m[1]}.{m[2]}'
    m = re.match(r'^transformer\.decoder\.layers\.(\d+)\.(\w+)\.(.+)$', rest)
    if m and m[2] in _LAYER:
        ok = m[3] in _ATTN if m[2] in ('self_attn', 'multihead_attn') else \
            m[3] in ('weight', 'bias')
        if ok:
            return f'{dec}layers.{m[1]}.{_LAYER[m[2]]}.{m[3]}'
    return None


def _indices(keys, pattern: str) -> List[int]:
    found = sorted({int(m[1]) for k in keys for m in [re.match(pattern, k)] if m})
    return found


def expected_keys(keys) -> List[str]:
    """The official keys a complete checkpoint with these layers must have
    (the backbone is checked by :func:`d2_resnet_to_mmovss`)."""
    keys = list(keys)
    out = []
    n = _num_levels(keys)
    pd = HEAD + 'pixel_decoder.'
    for i in range(1, n + 1):
        out += [f'{pd}layer_{i}.weight', f'{pd}layer_{i}.norm.weight',
                f'{pd}layer_{i}.norm.bias']
        if i < n:
            out += [f'{pd}adapter_{i}.weight', f'{pd}adapter_{i}.norm.weight',
                    f'{pd}adapter_{i}.norm.bias']
    out += [pd + 'mask_features.weight', pd + 'mask_features.bias']
    out += [PRED + k for k in ('query_embed.weight', 'input_proj.weight', 'input_proj.bias',
                               'transformer.decoder.norm.weight',
                               'transformer.decoder.norm.bias', 'projection_layer.weight',
                               'projection_layer.bias', 'bg_feature')]
    out += [f'{PRED}mask_embed.layers.{j}.{p}' for j in range(3) for p in ('weight', 'bias')]
    layers = _indices(keys, re.escape(PRED) + r'transformer\.decoder\.layers\.(\d+)\.')
    for i in range(max(layers) + 1 if layers else 1):
        base = f'{PRED}transformer.decoder.layers.{i}.'
        out += [base + f'{a}.{p}' for a in ('self_attn', 'multihead_attn') for p in _ATTN]
        out += [base + f'{a}.{p}' for a in ('linear1', 'linear2', 'norm1', 'norm2', 'norm3')
                for p in ('weight', 'bias')]
    for group, fixed, block_prefix in (
            ('visual.', [f'visual.{k}' for k in CLIP_VISUAL_KEYS], 'visual.transformer'),
            ('', list(CLIP_TEXT_KEYS), 'transformer')):
        present = [k for k in keys if k.startswith(CLIP) and (
            k[len(CLIP):].startswith('visual.') == bool(group))
            and not k.endswith('logit_scale')]
        if not present:
            continue  # no CLIP (the released training checkpoints)
        blocks = _indices(keys, re.escape(CLIP + block_prefix) + r'\.resblocks\.(\d+)\.')
        out += [CLIP + k for k in fixed]
        for b in range(max(blocks) + 1 if blocks else 1):
            out += [f'{CLIP}{block_prefix}.resblocks.{b}.{k}' for k in _BLOCK_KEYS]
    return out


def matches(state_dict: Mapping) -> bool:
    """ZegFormer's key signature: the predictor's ``bg_feature`` and
    ``projection_layer`` beside the pixel decoder's ``mask_features``."""
    try:
        keys = set(unwrap_state_dict(state_dict))
    except ConversionError:
        return False
    return {PRED + 'bg_feature', PRED + 'projection_layer.weight',
            HEAD + 'pixel_decoder.mask_features.weight'} <= keys


def official_temperature(state_dict: Mapping) -> float:
    """``TEMPERATURE`` of the segment branch, ``exp(-predictor.logit_scale)``."""
    sd = unwrap_state_dict(state_dict)
    key = PRED + 'logit_scale'
    if key not in sd:
        raise ConversionError(f'{_NAME}: no {key!r} in the checkpoint.')
    return math.exp(-float(sd[key].reshape(-1)[0]))

def conversion_meta(checkpoint) -> dict:
    """Facts kept beside the converted weights: the segment temperature
    (:func:`official_temperature`), which the configs set as
    ``decode_head.temperature``."""
    return dict(temperature=official_temperature(checkpoint))


def clip_keys(clip_state_dict: Mapping, region_text_encoder: bool = True
              ) -> Dict[str, torch.Tensor]:
    """The CLIP weights a released ZegFormer checkpoint lacks, from an
    OpenAI-layout CLIP state dict (``clip.load('ViT-B/16').state_dict()``,
    or open_clip's ``openai`` ViT-B-16 file): ``visual.*`` ->
    ``decode_head.region_classifier.clip.visual.*``, the text tower ->
    ``text_encoder.tower.*`` and (``region_text_encoder``)
    ``decode_head.region_text_encoder.tower.*``; ``logit_scale``,
    ``input_resolution``, ``context_length``, ``vocab_size`` are dropped
    (the text encoders read CLIP's temperature at build time).

    Raises:
        ConversionError: Unknown or missing CLIP keys.
    """
    sd = unwrap_state_dict(clip_state_dict)
    wrapped = {CLIP + k: v for k, v in sd.items()
               if k not in ('logit_scale', 'input_resolution', 'context_length', 'vocab_size')}
    out, unknown = {}, []
    for key, value in wrapped.items():
        new = convert_key(key)
        if new is None:
            unknown.append(key[len(CLIP):])
            continue
        out[new] = value
        if region_text_encoder and new.startswith('text_encoder.'):
            out['decode_head.region_text_encoder.' + new[len('text_encoder.'):]] = value
    missing = [k[len(CLIP):] for k in sorted(set(expected_keys(wrapped)) - set(wrapped))
               if k.startswith(CLIP)]
    has_text = any(k.startswith('text_encoder.') for k in out)
    has_visual = any(k.startswith('decode_head.region_classifier.') for k in out)
    if not (has_text and has_visual):
        missing.append('visual.* and the text tower')
    check_accounted('OpenAI CLIP', unknown, missing)
    return out


def convert(state_dict: Mapping, clip: Optional[Mapping] = None,
            region_text_encoder: bool = True) -> Dict[str, torch.Tensor]:
    """Official ZegFormer keys -> mmovss keys (see the module docstring).

    Args:
        state_dict (Mapping): The official checkpoint (or its ``model``).
        clip (Mapping, optional): An OpenAI-layout CLIP state dict whose
            weights fill the CLIP towers (:func:`clip_keys`); the released
            checkpoints have none, so a strict load of the official configs
            needs it.
        region_text_encoder (bool): With ``clip``, also fill
            ``decode_head.region_text_encoder`` (the official configs have
            one).

    Raises:
        ConversionError: Unknown or missing keys (with the first of each),
        or a backbone that is not a complete detectron2 ResNet.
    """
    sd = unwrap_state_dict(state_dict)
    if not matches(sd):
        raise ConversionError(
            f'Not a {_NAME} checkpoint: no {PRED}bg_feature / projection_layer / '
            f'pixel_decoder.mask_features keys; pass zegformer_*.pth as released, or the '
            f'converter of its own format (mmovss.converters.formats.detect_format).')
    n = _num_levels(sd)
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in sd.items():
        if key.startswith('backbone.') or _dropped(key):
            continue
        new = convert_key(key, n)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    missing = sorted(set(expected_keys(sd)) - set(sd))
    check_accounted(_NAME, unknown, missing)
    try:
        out.update(d2_resnet_to_mmovss(sd))
    except ConversionError as err:
        raise ConversionError(f'{_NAME}: {err}') from None
    if clip is not None:
        for key, value in clip_keys(clip, region_text_encoder).items():
            out.setdefault(key, value)  # the checkpoint's own CLIP (if any) wins
    return out
