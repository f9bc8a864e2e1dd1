"""FC-CLIP checkpoints as released by its authors -> mmovss.

The official model (``github.com/bytedance/fc-clip``, detectron2
``FCCLIP`` meta-architecture; the released ``fcclip_cocopan.pth`` of the
ConvNeXt-L model) stores, under ``model``:

* ``backbone.clip_model.*``: the whole frozen open_clip CLIP (``visual.trunk``
  timm ConvNeXt, ``visual.head`` projection, and the text tower);
* ``sem_seg_head.pixel_decoder.*``: Mask2Former's MSDeformAttn pixel decoder;
* ``sem_seg_head.predictor.*``: the masked-attention decoder with FC-CLIP's
  class branch (``_mask_pooling_proj``, ``class_embed``, ``logit_scale``);
* ``void_embedding.weight`` and ``criterion.empty_weight``.

:func:`convert` maps them onto :class:`~mmovss.models.segmentors.FCCLIPEncoderDecoder`
(``OpenCLIPConvNeXt`` backbone, ``OpenCLIPTextEncoder``, ``FCCLIPHead``);
every key is mapped or dropped with the reason in :data:`DROPPED`. Text
embeddings are not stored by the official model either: our text encoder
recomputes them from the converted text tower (the official ``VILD_PROMPT``
templates = our ``'vild'`` set, template-averaged and normalised as in
``FCCLIP.get_text_classifier``).

The ResNet CLIP variants (RN50 ... RN50x64) are refused: their
out-of-vocabulary branch is the CLIP attention pool with a mask-restricted
attention (``CLIP.visual_prediction_forward_resnet``), and mmovss has no
open_clip ``ModifiedResNet`` backbone with that pooling.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping

import torch

from .common import ConversionError, check_accounted, unwrap_state_dict

__all__ = ['FORMAT', 'DROPPED', 'matches', 'convert', 'convert_key']

FORMAT = 'fcclip_official'

_CLIP = 'backbone.clip_model.'
_PD = 'sem_seg_head.pixel_decoder.'
_DEC = 'sem_seg_head.predictor.'

DROPPED = {
    _CLIP + 'logit_scale': (
        "CLIP's temperature: OpenCLIPTextEncoder keeps it as a non-persistent buffer "
        'read from the same open_clip CLIP (the config\'s pretrained tag)'),
    _CLIP + 'attn_mask': 'the causal text mask, rebuilt by open_clip (non-persistent)',
    'criterion.empty_weight': 'training-loss class weights (no-object weight), not a model '
                              'parameter',
}
"""Official keys without a place in mmovss, with the reason."""

# (official regex, mmovss replacement), tried in order; the first match wins
_RULES = [
    # frozen CLIP: image tower -> backbone, text tower -> text encoder
    (r'^backbone\.clip_model\.visual\.', 'backbone.visual.'),
    (r'^backbone\.clip_model\.(token_embedding\.|positional_embedding$|text_projection$|'
     r'ln_final\.|transformer\.resblocks\.)', r'text_encoder.tower.\1'),
    # pixel decoder
    (r'^sem_seg_head\.pixel_decoder\.input_proj\.', 'decode_head.pixel_decoder.input_proj.'),
    (r'^sem_seg_head\.pixel_decoder\.transformer\.level_embed$',
     'decode_head.pixel_decoder.level_embed'),
    (r'^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.self_attn\.',
     r'decode_head.pixel_decoder.layers.\1.attn.'),
    (r'^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.(norm[12])\.',
     r'decode_head.pixel_decoder.layers.\1.\2.'),
    (r'^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.linear1\.',
     r'decode_head.pixel_decoder.layers.\1.ffn.0.'),
    (r'^sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(\d+)\.linear2\.',
     r'decode_head.pixel_decoder.layers.\1.ffn.2.'),
    (r'^sem_seg_head\.pixel_decoder\.mask_features\.', 'decode_head.pixel_decoder.mask_proj.'),
    (r'^sem_seg_head\.pixel_decoder\.adapter_1\.norm\.', 'decode_head.pixel_decoder.lateral.1.'),
    (r'^sem_seg_head\.pixel_decoder\.adapter_1\.weight$',
     'decode_head.pixel_decoder.lateral.0.weight'),
    (r'^sem_seg_head\.pixel_decoder\.layer_1\.norm\.', 'decode_head.pixel_decoder.output.1.'),
    (r'^sem_seg_head\.pixel_decoder\.layer_1\.weight$',
     'decode_head.pixel_decoder.output.0.weight'),
    # transformer decoder (cross-attention, self-attention, FFN per layer)
    (r'^sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.multihead_attn\.',
     r'decode_head.decoder.layers.\1.cross.'),
    (r'^sem_seg_head\.predictor\.transformer_cross_attention_layers\.(\d+)\.norm\.',
     r'decode_head.decoder.layers.\1.norms.0.'),
    (r'^sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.self_attn\.',
     r'decode_head.decoder.layers.\1.self_attn.'),
    (r'^sem_seg_head\.predictor\.transformer_self_attention_layers\.(\d+)\.norm\.',
     r'decode_head.decoder.layers.\1.norms.1.'),
    (r'^sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.linear1\.',
     r'decode_head.decoder.layers.\1.ffn.0.'),
    (r'^sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.linear2\.',
     r'decode_head.decoder.layers.\1.ffn.2.'),
    (r'^sem_seg_head\.predictor\.transformer_ffn_layers\.(\d+)\.norm\.',
     r'decode_head.decoder.layers.\1.norms.2.'),
    (r'^sem_seg_head\.predictor\.decoder_norm\.', 'decode_head.decoder.norm.'),
    (r'^sem_seg_head\.predictor\.query_feat\.', 'decode_head.decoder.query_feat.'),
    (r'^sem_seg_head\.predictor\.query_embed\.', 'decode_head.decoder.query_pos.'),
    (r'^sem_seg_head\.predictor\.level_embed\.', 'decode_head.decoder.level_embed.'),
    (r'^sem_seg_head\.predictor\.mask_embed\.layers\.', 'decode_head.decoder.mask_mlp.layers.'),
    (r'^sem_seg_head\.predictor\._mask_pooling_proj\.', 'decode_head.decoder.pool_proj.'),
    (r'^sem_seg_head\.predictor\.class_embed\.layers\.',
     'decode_head.decoder.class_mlp.layers.'),
    (r'^sem_seg_head\.predictor\.logit_scale$', 'decode_head.decoder.logit_scale'),
    (r'^void_embedding\.weight$', 'decode_head.void_embed'),
]

# keys every complete checkpoint has (layer-indexed ones are checked per index)
_REQUIRED = [
    _CLIP + 'visual.trunk.stem.0.weight', _CLIP + 'visual.trunk.head.norm.weight',
    _CLIP + 'token_embedding.weight', _CLIP + 'positional_embedding',
    _CLIP + 'text_projection', _CLIP + 'ln_final.weight',
    _PD + 'transformer.level_embed', _PD + 'mask_features.weight', _PD + 'adapter_1.weight',
    _PD + 'layer_1.weight', _PD + 'input_proj.0.0.weight',
    _DEC + 'decoder_norm.weight', _DEC + 'query_feat.weight', _DEC + 'query_embed.weight',
    _DEC + 'level_embed.weight', _DEC + 'mask_embed.layers.2.weight',
    _DEC + '_mask_pooling_proj.1.weight', _DEC + 'class_embed.layers.2.weight',
    _DEC + 'logit_scale', 'void_embedding.weight',
]
_DEC_LAYER = [
    'transformer_cross_attention_layers.{}.multihead_attn.in_proj_weight',
    'transformer_cross_attention_layers.{}.norm.weight',
    'transformer_self_attention_layers.{}.self_attn.in_proj_weight',
    'transformer_self_attention_layers.{}.norm.weight',
    'transformer_ffn_layers.{}.linear1.weight', 'transformer_ffn_layers.{}.linear2.weight',
    'transformer_ffn_layers.{}.norm.weight',
]
_ENC_LAYER = [
    'self_attn.sampling_offsets.weight', 'self_attn.attention_weights.weight',
    'self_attn.value_proj.weight', 'self_attn.output_proj.weight', 'norm1.weight',
    'linear1.weight', 'linear2.weight', 'norm2.weight',
]


def convert_key(key: str):
    """The mmovss key of an official key; None when it has no place."""
    for pattern, repl in _RULES:
        new, n = re.subn(pattern, repl, key, count=1)
        if n:
            return new
    return None


def matches(state_dict: Mapping) -> bool:
    """Official FC-CLIP keys: the frozen CLIP under ``backbone.clip_model``, the
    ``sem_seg_head.predictor`` with FC-CLIP's class branch, ``void_embedding``."""
    try:
        keys = unwrap_state_dict(state_dict).keys()
    except ConversionError:
        return False
    return ('void_embedding.weight' in keys
            and any(k.startswith(_DEC + '_mask_pooling_proj.') for k in keys)
            and any(k.startswith(_CLIP) for k in keys))


def _missing(keys) -> List[str]:
    keys = set(keys)
    missing = [k for k in _REQUIRED if k not in keys]
    dec = {int(m.group(1)) for k in keys
           for m in [re.match(re.escape(_DEC) + r'transformer_\w+_layers\.(\d+)\.', k)] if m}
    enc = {int(m.group(1)) for k in keys
           for m in [re.match(re.escape(_PD) + r'transformer\.encoder\.layers\.(\d+)\.', k)] if m}
    for i in range(max(dec, default=-1) + 1):
        missing += [_DEC + t.format(i) for t in _DEC_LAYER if _DEC + t.format(i) not in keys]
    for i in range(max(enc, default=-1) + 1):
        name = f'{_PD}transformer.encoder.layers.{i}.'
        missing += [name + t for t in _ENC_LAYER if name + t not in keys]
    stages = {int(m.group(1)) for k in keys
              for m in [re.match(re.escape(_CLIP) + r'visual\.trunk\.stages\.(\d+)\.', k)] if m}
    missing += [f'{_CLIP}visual.trunk.stages.{i}.*' for i in range(4) if i not in stages]
    return missing


def convert(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Converts an official FC-CLIP (ConvNeXt CLIP) state dict to mmovss keys.

    Args:
        state_dict (Mapping): The checkpoint (``{'model': ...}`` or the state
            dict itself).

    Returns:
        dict: mmovss keys -> tensors, for ``FCCLIPEncoderDecoder``.

    Raises:
        ConversionError: A ResNet-CLIP checkpoint, unknown keys, or keys a
            complete checkpoint has are missing.
    """
    state = unwrap_state_dict(state_dict)
    if any(k.startswith(_CLIP + 'visual.attnpool.') for k in state):
        raise ConversionError(
            'This is an FC-CLIP checkpoint with a ResNet CLIP (backbone.clip_model.visual.'
            'attnpool.*): its out-of-vocabulary branch pools with the CLIP attention pool '
            'restricted to each mask, which mmovss does not implement; only the ConvNeXt '
            'CLIP checkpoints (e.g. the ConvNeXt-L fcclip_cocopan.pth) convert.')
    out = OrderedDict()
    unknown = []
    for key, value in state.items():
        if key in DROPPED:
            continue
        new = convert_key(key)
        if new is None:
            unknown.append(key)
            continue
        out[new] = value
    check_accounted('FC-CLIP (official)', unknown, _missing(state))
    return out
