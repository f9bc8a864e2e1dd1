"""SAN checkpoints between mmseg 1.x and mmovss layouts (both ways).

mmseg's ``MultimodalEncoderDecoder`` + ``SideAdapterCLIPHead`` (e.g. the
released ``san-vit-b16_20230906-fd0a7684.pth``) <-> mmovss's
``OpenVocabEncoderDecoder`` with ``SANCLIPViT`` / ``SANHead`` /
``OpenCLIPTextEncoder``::

    python tools/model_converters/san_mmseg_to_mmovss.py mmseg.pth ours.pth
    python tools/model_converters/san_mmseg_to_mmovss.py ours.pth mmseg.pth \
        --to mmseg

(the tool is a command-line wrapper of this module).

CLIP's temperature lives in mmseg's text encoder (``logit_scale``); mmovss
takes it from the open_clip model. Converting to mmovss stores it in
``meta['san_logit_scale']`` (and prints it); converting back uses that
value, or ``--logit-scale`` (log of the temperature, default log(100) as in
OpenAI CLIP).
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch


# ---------------------------------------------------------------- key rules
# Inner rules: (mmseg regex, mmovss replacement, mmovss regex, mmseg
# replacement), tried in order on the key after its prefix; the first that
# matches is applied.
def _literal(mm: str, ours: str):
    return ('^' + re.escape(mm), ours, '^' + re.escape(ours), mm)


_CLIP_BLOCK = [
    _literal('ln1.', 'ln_1.'), _literal('ln2.', 'ln_2.'),
    _literal('attn.attn.', 'attn.'),
    _literal('ffn.layers.0.0.', 'mlp.c_fc.'),
    _literal('ffn.layers.1.', 'mlp.c_proj.'),
]
_REC_BLOCK = [
    _literal('norms.0.', 'ln_1.'), _literal('norms.1.', 'ln_2.'),
    _literal('attentions.0.attn.', 'attn.'),
    _literal('ffns.0.layers.0.0.', 'mlp.c_fc.'),
    _literal('ffns.0.layers.1.', 'mlp.c_proj.'),
]
_ADAPTER = [
    _literal('encode_layers.', 'layers.'),
    (r'^conv_clips\.(\d+)\.1\.conv\.', r'clip_fusions.\1.1.',
     r'^clip_fusions\.(\d+)\.1\.', r'conv_clips.\1.1.conv.'),
    (r'^conv_clips\.(\d+)\.0\.', r'clip_fusions.\1.0.',
     r'^clip_fusions\.(\d+)\.0\.', r'conv_clips.\1.0.'),
    _literal('mask_decoder.pix_mlp.', 'decoder.pixel_mlp.'),
    _literal('mask_decoder.attn_mlp.', 'decoder.bias_mlp.'),
    _literal('mask_decoder.query_mlp.', 'decoder.query_mlp.'),
    _literal('mask_decoder.bias_scaling.', 'decoder.bias_scaling.'),
]
_PREFIXES = [  # (mmseg prefix, mmovss prefix, inner rules)
    ('image_encoder.layers.', 'backbone.visual.transformer.resblocks.',
     _CLIP_BLOCK),
    ('text_encoder.transformer.', 'text_encoder.tower.transformer.resblocks.',
     _REC_BLOCK),
    ('decode_head.rec_with_attnbias.layers.', 'decode_head.recognizer.blocks.',
     _REC_BLOCK),
    ('decode_head.rec_with_attnbias.ln_post.',
     'decode_head.recognizer.ln_post.', []),
    ('decode_head.side_adapter_network.', 'decode_head.side_adapter.',
     _ADAPTER),
    ('image_encoder.ln_pre.', 'backbone.visual.ln_pre.', []),
    ('image_encoder.patch_embed.projection.', 'backbone.visual.conv1.', []),
    ('text_encoder.ln_final.', 'text_encoder.tower.ln_final.', []),
    ('text_encoder.token_embedding.', 'text_encoder.tower.token_embedding.',
     []),
]
_PLAIN = {  # whole keys (value transforms in the converters)
    'image_encoder.cls_token': 'backbone.visual.class_embedding',
    'image_encoder.pos_embed': 'backbone.visual.positional_embedding',
    'text_encoder.positional_embedding':
    'text_encoder.tower.positional_embedding',
    'text_encoder.text_projection': 'text_encoder.tower.text_projection',
    'text_encoder.bg_embed': 'decode_head.void_embed',
    'decode_head.rec_with_attnbias.proj.weight': 'decode_head.recognizer.proj',
}


def _apply_rules(rest: str, rules, to_mmovss: bool) -> str:
    """Rewrites the part of a key after its prefix."""
    for mm_pat, ours_repl, ours_pat, mm_repl in rules:
        pat, repl = (mm_pat, ours_repl) if to_mmovss else (ours_pat, mm_repl)
        # the block index (if any) comes first: keep it
        head, sep, tail = rest.partition('.') if rest[:1].isdigit() else \
            ('', '', rest)
        new = re.sub(pat, repl, tail, count=1)
        if new != tail:
            return head + sep + new
    return rest


def convert_key(key: str, to_mmovss: bool) -> Optional[str]:
    """The key in the other layout, or None for keys that have no place."""
    plain = _PLAIN if to_mmovss else {v: k for k, v in _PLAIN.items()}
    if key in plain:
        return plain[key]
    for mm, ours, rules in _PREFIXES:
        src, dst = (mm, ours) if to_mmovss else (ours, mm)
        if key.startswith(src):
            return dst + _apply_rules(key[len(src):], rules, to_mmovss)
    return None


def mmseg_to_mmovss(state: Dict[str, torch.Tensor]
                    ) -> Tuple[Dict[str, torch.Tensor], float]:
    """Converts an mmseg SAN state dict.

    Returns:
        tuple: The mmovss state dict and mmseg's ``logit_scale`` (log of
        the temperature; nan when absent).
    """
    out = OrderedDict()
    logit_scale = float('nan')
    unknown = []
    for key, value in state.items():
        if key == 'text_encoder.logit_scale':
            logit_scale = float(value)
            continue
        new = convert_key(key, True)
        if new is None:
            unknown.append(key)
            continue
        if key == 'image_encoder.cls_token':
            value = value.reshape(-1)
        elif key == 'image_encoder.pos_embed':
            value = value.reshape(value.shape[-2], value.shape[-1])
        elif key == 'decode_head.rec_with_attnbias.proj.weight':
            value = value.t().contiguous()
        out[new] = value
    if unknown:
        raise KeyError(f'No mmovss place for mmseg SAN keys {unknown[:5]} '
                       f'({len(unknown)} in all); is this a SAN checkpoint?')
    return out, logit_scale


def mmovss_to_mmseg(state: Dict[str, torch.Tensor],
                    logit_scale: float = math.log(100.0)
                    ) -> Dict[str, torch.Tensor]:
    """Converts an mmovss SAN state dict to mmseg's layout."""
    out = OrderedDict()
    unknown = []
    for key, value in state.items():
        new = convert_key(key, False)
        if new is None:
            unknown.append(key)
            continue
        if key == 'backbone.visual.class_embedding':
            value = value.reshape(1, 1, -1)
        elif key == 'backbone.visual.positional_embedding':
            value = value[None]
        elif key == 'decode_head.recognizer.proj':
            value = value.t().contiguous()
        out[new] = value
    if unknown:
        raise KeyError(f'No mmseg place for mmovss SAN keys {unknown[:5]} '
                       f'({len(unknown)} in all); is this a SAN checkpoint?')
    out['text_encoder.logit_scale'] = torch.tensor(float(logit_scale))
    return out


# ------------------------------------------ interface of converters/formats.py
FORMAT = 'san_mmseg'
"""This format's name in :data:`mmovss.converters.formats.FORMAT_MODULES`."""

_SIGNATURE = ('image_encoder.patch_embed.projection.weight',
              'decode_head.side_adapter_network.')


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """Whether the keys are mmseg 1.x SAN's (``MultimodalEncoderDecoder``
    with a ``SideAdapterCLIPHead``)."""
    return _SIGNATURE[0] in state_dict and any(
        k.startswith(_SIGNATURE[1]) for k in state_dict)


def convert(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """mmseg SAN keys -> mmovss keys (:func:`mmseg_to_mmovss`).

    Dropped: ``text_encoder.logit_scale`` (mmovss takes CLIP's temperature
    from the open_clip model; :func:`mmseg_to_mmovss` returns it). Every
    other key is mapped; a key with no place, a whole-key tensor of
    :data:`_PLAIN` or a layer group of :data:`_PREFIXES` that the file lacks
    is refused.

    Raises:
        ConversionError: Unknown or missing keys, with a summary.
    """
    from .common import ConversionError, check_accounted
    unknown = [k for k in state_dict
               if k != 'text_encoder.logit_scale' and convert_key(k, True) is None]
    missing = [k for k in _PLAIN if k not in state_dict]
    missing += [prefix + '*' for prefix, _, _ in _PREFIXES
                if not any(k.startswith(prefix) for k in state_dict)]
    check_accounted('SAN (mmseg 1.x)', unknown, missing)
    try:
        return dict(mmseg_to_mmovss(state_dict)[0])
    except KeyError as err:  # defensive: convert_key and mmseg_to_mmovss agree
        raise ConversionError(str(err)) from None
