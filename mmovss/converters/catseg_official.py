"""CAT-Seg checkpoints as released by its authors -> mmovss.

The released files (``model_base.pth``, ViT-B/16; ``model_large.pth``,
ViT-L/14@336, README of github.com/KU-CVLAB/CAT-Seg) hold detectron2's
``{'model': state_dict, ...}`` of ``CATSeg`` (``cat_seg/cat_seg_model.py``):

* ``sem_seg_head.predictor.clip_model.*``: the whole CLIP of
  ``cat_seg/third_party/model_vpt.py`` (OpenAI layout; its ``Attention``
  splits the packed input projection into ``q_proj_weight``,
  ``k_proj_weight``, ``v_proj_weight``), fine-tuned (Q/V rows);
* ``sem_seg_head.predictor.transformer.*``: the ``Aggregator``
  (``cat_seg/modeling/transformer/model.py``);
* ``upsample1.*`` / ``upsample2.*``: the transposed convolutions of the
  decoder guidance, owned by ``CATSeg`` itself.

They map to :class:`~mmovss.models.segmentors.CATSegEncoderDecoder` with
:class:`~mmovss.models.backbones.CATSegCLIPViT` (``backbone.visual.*``,
open_clip layout), :class:`~mmovss.models.text_encoders.CATSegTextEncoder`
(``text_encoder.tower.*``) and :class:`~mmovss.models.decode_heads.CATSegHead`
(``decode_head.*``). Every key is mapped or dropped with the reason in
:data:`DROPPED`; anything else, or a missing key, is refused
(:func:`~mmovss.converters.common.check_accounted`)::

    python tools/model_converters/catseg_official_to_mmovss.py model_base.pth ours.pth
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Set

import torch

from .common import ConversionError, check_accounted, unwrap_state_dict

__all__ = ['FORMAT', 'DROPPED', 'matches', 'convert', 'convert_key', 'expected_keys']

FORMAT = 'catseg_official'
_NAME = 'CAT-Seg (official)'

CLIP = 'sem_seg_head.predictor.clip_model.'
AGG = 'sem_seg_head.predictor.transformer.'

#: Official keys (regex) dropped on purpose, with the reason.
DROPPED: Dict[str, str] = {
    re.escape(CLIP) + r'logit_scale$':
        "CLIP's temperature: CAT-Seg never uses it (the cost volume is a cosine "
        'similarity and the aggregator learns its own scale).',
    re.escape(AGG) + r'layers\.\d+\.swin_block\.block_2\.attn_mask$':
        "the shifted-window mask buffer, a constant of the 24x24 grid; mmseg's "
        'ShiftWindowMSA recomputes it.',
    r'^(clip_)?pixel_(mean|std)$':
        "normalisation constants (non-persistent in the released code); the config's "
        'data_preprocessor holds them.',
}

# (official regex, mmovss replacement) applied to the key after its prefix.
_CLIP_BLOCK = [
    (r'^attn\.in_proj_bias$', 'attn.in_proj_bias'),
    (r'^attn\.out_proj\.(weight|bias)$', r'attn.out_proj.\1'),
    (r'^(ln_1|ln_2)\.(weight|bias)$', r'\1.\2'),
    (r'^mlp\.(c_fc|c_proj)\.(weight|bias)$', r'mlp.\1.\2'),
]
_SWIN_BLOCK = [
    (r'^(norm1|norm2)\.(weight|bias)$', r'\1.\2'),
    (r'^attn\.(q|k|v|proj)\.(weight|bias)$', r'attn.w_msa.\1.\2'),
    (r'^mlp\.fc1\.(weight|bias)$', r'ffn.layers.0.0.\1'),
    (r'^mlp\.fc2\.(weight|bias)$', r'ffn.layers.1.\1'),
]
_CLASS_LAYER = [
    (r'^attention\.(q|k|v)\.(weight|bias)$', r'\1.\2'),
    (r'^MLP\.(0|2)\.(weight|bias)$', r'mlp.\1.\2'),
    (r'^(norm1|norm2)\.(weight|bias)$', r'\1.\2'),
    (r'^padding_tokens$', 'padding_token'),
    (r'^padding_guidance$', 'padding_guidance'),
]
_DECODER = [
    (r'^up\.(weight|bias)$', r'up.\1'),
    (r'^conv\.double_conv\.0\.weight$', 'convs.0.conv.weight'),
    (r'^conv\.double_conv\.1\.(weight|bias)$', r'convs.0.gn.\1'),
    (r'^conv\.double_conv\.3\.weight$', 'convs.1.conv.weight'),
    (r'^conv\.double_conv\.4\.(weight|bias)$', r'convs.1.gn.\1'),
]
_AGG_PLAIN = [
    (r'^conv1\.(weight|bias)$', r'cost_embed.\1'),
    (r'^guidance_projection\.0\.(weight|bias)$', r'appearance_guidance.0.\1'),
    (r'^text_guidance_projection\.0\.(weight|bias)$', r'text_guidance.0.\1'),
    (r'^decoder_guidance_projection\.(\d+)\.0\.(weight|bias)$', r'guidance_proj.\1.0.\2'),
    (r'^head\.(weight|bias)$', r'to_logit.\1'),
    (r'^layers\.(\d+)\.swin_block\.guidance_norm\.(weight|bias)$',
     r'spatial_layers.\1.guidance_norm.\2'),
]
_TOWER_PLAIN = ['class_embedding', 'positional_embedding', 'proj', 'conv1.weight',
                'ln_pre.weight', 'ln_pre.bias', 'ln_post.weight', 'ln_post.bias']
_TEXT_PLAIN = ['token_embedding.weight', 'positional_embedding', 'text_projection',
               'ln_final.weight', 'ln_final.bias']
_QKV = ('q_proj_weight', 'k_proj_weight', 'v_proj_weight')


def _rewrite(rest: str, rules) -> Optional[str]:
    for pattern, repl in rules:
        if re.match(pattern, rest):
            return re.sub(pattern, repl, rest, count=1)
    return None


def _clip_tower_key(rest: str, out: str, plain) -> Optional[str]:
    """One CLIP tower's key (``rest`` after its prefix) under our prefix ``out``."""
    if rest in plain:
        return out + rest
    m = re.match(r'^transformer\.resblocks\.(\d+)\.(.+)$', rest)
    if m:
        inner = _rewrite(m.group(2), _CLIP_BLOCK)
        return None if inner is None else \
            f'{out}transformer.resblocks.{m.group(1)}.{inner}'
    return None


def convert_key(key: str) -> Optional[str]:
    """The mmovss key of an official key (None: no place, or a Q/K/V part).

    The split ``attn.{q,k,v}_proj_weight`` keys are merged by
    :func:`convert` into ``attn.in_proj_weight``.
    """
    if key.startswith(CLIP + 'visual.'):
        return _clip_tower_key(key[len(CLIP + 'visual.'):], 'backbone.visual.', _TOWER_PLAIN)
    if key.startswith(CLIP):
        return _clip_tower_key(key[len(CLIP):], 'text_encoder.tower.', _TEXT_PLAIN)
    if key.startswith(AGG):
        rest = key[len(AGG):]
        plain = _rewrite(rest, _AGG_PLAIN)
        if plain is not None:
            return 'decode_head.' + plain
        m = re.match(r'^layers\.(\d+)\.swin_block\.block_([12])\.(.+)$', rest)
        if m:
            inner = _rewrite(m.group(3), _SWIN_BLOCK)
            return None if inner is None else (
                f'decode_head.spatial_layers.{m.group(1)}.blocks.'
                f'{int(m.group(2)) - 1}.{inner}')
        m = re.match(r'^layers\.(\d+)\.attention\.(.+)$', rest)
        if m:
            inner = _rewrite(m.group(2), _CLASS_LAYER)
            return None if inner is None else f'decode_head.class_layers.{m.group(1)}.{inner}'
        m = re.match(r'^decoder([12])\.(.+)$', rest)
        if m:
            inner = _rewrite(m.group(2), _DECODER)
            return None if inner is None else \
                f'decode_head.decoder.{int(m.group(1)) - 1}.{inner}'
        return None
    m = re.match(r'^upsample([12])\.(weight|bias)$', key)
    if m:
        return f'decode_head.guidance_up.{int(m.group(1)) - 1}.{m.group(2)}'
    return None


def _dropped(key: str) -> bool:
    return any(re.search(pattern, key) for pattern in DROPPED)


def _blocks(keys, prefix: str) -> Set[str]:
    pat = re.compile(re.escape(prefix) + r'(\d+)\.')
    return {m.group(1) for m in map(pat.match, keys) if m}


def expected_keys(keys) -> List[str]:
    """The official keys a complete file of this layout must have.

    The numbers of CLIP blocks (image and text) and aggregation layers are
    read from the keys themselves; a block that appears must be complete.
    """
    keys = set(keys)
    out = [CLIP + 'visual.' + k for k in _TOWER_PLAIN]
    out += [CLIP + k for k in _TEXT_PLAIN]
    block = ['attn.' + q for q in _QKV] + [
        'attn.in_proj_bias', 'attn.out_proj.weight', 'attn.out_proj.bias',
        'ln_1.weight', 'ln_1.bias', 'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight',
        'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias']
    for tower in (CLIP + 'visual.transformer.resblocks.', CLIP + 'transformer.resblocks.'):
        for i in sorted(_blocks(keys, tower)):
            out += [f'{tower}{i}.{k}' for k in block]
    wb = ('weight', 'bias')
    out += [f'{AGG}conv1.{p}' for p in wb]
    out += [f'{AGG}head.{p}' for p in wb]
    out += [f'upsample{i}.{p}' for i in (1, 2) for p in wb]
    for i in (1, 2):
        out += [f'{AGG}decoder{i}.up.{p}' for p in wb]
        out += [f'{AGG}decoder{i}.conv.double_conv.{j}.weight' for j in (0, 3)]
        out += [f'{AGG}decoder{i}.conv.double_conv.{j}.{p}' for j in (1, 4) for p in wb]
    swin = [f'{n}.{p}' for n in ('norm1', 'norm2', 'attn.q', 'attn.k', 'attn.v', 'attn.proj',
                                 'mlp.fc1', 'mlp.fc2') for p in wb]
    cls = [f'{n}.{p}' for n in ('attention.q', 'attention.k', 'attention.v', 'MLP.0', 'MLP.2',
                                'norm1', 'norm2') for p in wb]
    layers = sorted(_blocks(keys, AGG + 'layers.'))
    if not layers:
        out.append(AGG + 'layers.0.attention.norm1.weight')  # reported as missing
    for i in layers:
        for b in (1, 2):
            out += [f'{AGG}layers.{i}.swin_block.block_{b}.{k}' for k in swin]
        out += [f'{AGG}layers.{i}.attention.{k}' for k in cls]
    return out


def matches(state_dict: Mapping) -> bool:
    """Whether the keys are those of a released CAT-Seg checkpoint."""
    try:
        keys = unwrap_state_dict(state_dict).keys()
    except ConversionError:
        return False
    # the cost aggregator's own projections: ZegFormer's evaluation state dicts
    # also hold CLIP's visual keys and a ``predictor.transformer`` (its DETR decoder)
    return (CLIP + 'visual.conv1.weight' in keys and AGG + 'conv1.weight' in keys
            and any(k.startswith(AGG + 'guidance_projection.') for k in keys))


def convert(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Converts a released CAT-Seg state dict (or checkpoint) to mmovss keys.

    Value changes: the split ``q/k/v_proj_weight`` of each CLIP block are
    concatenated into open_clip's ``in_proj_weight`` (that is how
    ``model_vpt.Attention`` split them); ``padding_tokens`` /
    ``padding_guidance`` (1, 1, C) become (C,) vectors.

    Raises:
        ConversionError: Unknown keys (e.g. the VPT ``prompt_tokens`` of a
            model trained with ``PROMPT_DEPTH > 0``, which mmovss does not
            implement) or missing ones, with a summary.
    """
    state = unwrap_state_dict(state_dict)
    if not matches(state):
        raise ConversionError(
            f'Not a {_NAME} checkpoint: no {CLIP}visual.conv1.weight and '
            f'{AGG}* keys (found e.g. {sorted(state)[:3]}). Pass model_base.pth / '
            f'model_large.pth of github.com/KU-CVLAB/CAT-Seg, or the converter of the '
            f"file's own format.")
    prompts = sorted(k for k in state if k.endswith('prompt_tokens'))
    if prompts:
        raise ConversionError(
            f'{_NAME}: {prompts[0]} holds visual prompt tokens of a model trained with '
            f'MODEL.SEM_SEG_HEAD.PROMPT_DEPTH > 0 (VPT deep prompts), which mmovss does not '
            f'implement; the released model_base.pth / model_large.pth have none.')
    out = OrderedDict()
    unknown = []
    qkv: Dict[str, Dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if _dropped(key):
            continue
        m = re.match(r'^(.*\.attn\.)(q|k|v)_proj_weight$', key)
        if m and key.startswith(CLIP):
            qkv.setdefault(m.group(1), {})[m.group(2)] = value
            continue
        new = convert_key(key)
        if new is None:
            unknown.append(key)
            continue
        if new.endswith(('padding_token', 'padding_guidance')):
            value = value.reshape(-1)
        out[new] = value
    expected = expected_keys(state)
    missing = [k for k in expected if k not in state]
    check_accounted(_NAME, unknown, missing)
    for prefix, parts in qkv.items():
        new = convert_key(prefix + 'in_proj_bias')
        if new is None:
            check_accounted(_NAME, [prefix + 'q_proj_weight'])
        out[new[:-len('in_proj_bias')] + 'in_proj_weight'] = torch.cat(
            [parts['q'], parts['k'], parts['v']], dim=0)
    return out
