"""SAN checkpoints as released by its authors -> mmovss.

The official code (github.com/MendelXu/SAN, ``san/model/san.py``, class
``SAN``; detectron2 + open_clip 2.16) saves one state dict (detectron2's
checkpointer puts it under ``'model'``) with these parts, for the released
``san_vit_b_16.pth`` and ``san_vit_large_14.pth``:

* ``clip_visual_extractor.*`` - ``FeatureExtractor`` (``clip_utils/visual.py``):
  the open_clip ViT's ``conv1``, ``class_embedding``, ``positional_embedding``,
  ``ln_pre`` and the first ``FEATURE_LAST_LAYER_IDX`` blocks ``resblocks.N``
  -> our backbone ``SANCLIPViT`` (``backbone.visual.*``);
* ``clip_rec_head.*`` - ``RecWithAttnbiasHead``: the deeper blocks (re-indexed
  from 0), ``ln_post``, ``proj`` -> ``decode_head.recognizer.*``;
* ``side_adapter_network.*`` - ``RegionwiseSideAdapterNetwork``
  (``side_adapter/side_adapter.py``): a timm ViT (``vit_model.patch_embed``,
  ``pos_embed`` without the class token, ``blocks.N``), ``query_embed``,
  ``query_pos_embed``, ``fusion_layers.layer_<side block>.input_proj.{0,1}``
  and ``mask_decoder.{query,pix,attn}_mlp`` / ``bias_scaling`` ->
  ``decode_head.side_adapter.*``;
* ``ov_classifier.*`` - ``LearnableBgOvClassifier`` (``clip_utils/
  classifier.py``): the CLIP text tower (``transformer``, ``token_embedding``,
  ``positional_embedding``, ``ln_final``, ``text_projection``) ->
  ``text_encoder.tower.*`` and ``bg_embed`` -> ``decode_head.void_embed``;
* dropped (reason in :data:`DROPPED`): ``ov_classifier.logit_scale``,
  ``ov_classifier.attn_mask``, ``criterion.empty_weight``, ``pixel_mean``,
  ``pixel_std``.

The open_clip block layout (``ln_1``, ``attn.in_proj_*``, ``attn.out_proj``,
``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``) is the same in open_clip 2.16 and 3.x;
2.16 runs the blocks sequence-first, which changes no weight.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch

from .common import ConversionError, check_accounted, unwrap_state_dict

__all__ = ['FORMAT', 'DROPPED', 'matches', 'convert', 'fusion_targets']

FORMAT = 'san_official'
_NAME = 'SAN (official, github.com/MendelXu/SAN)'

DROPPED = {
    'ov_classifier.logit_scale':
        "CLIP's temperature; SAN freezes it (PredefinedOvClassifier._freeze), so "
        "it is the open_clip model's own value, which mmovss's text encoder reads "
        'from the same CLIP weights (text_encoder.logit_scale)',
    'ov_classifier.attn_mask':
        "the text tower's causal mask, a constant buffer that open_clip rebuilds",
    'criterion.empty_weight':
        'training-loss class weights (no-object weight), rebuilt by '
        'MaskClassificationLoss from no_object_weight',
    'pixel_mean': 'image normalisation constant (data_preprocessor.mean)',
    'pixel_std': 'image normalisation constant (data_preprocessor.std)',
}
"""Official keys that have no mmovss place, and why."""

# inner names of one open_clip residual block (open_clip 2.16 and 3.x)
_CLIP_BLOCK = ('ln_1.weight', 'ln_1.bias', 'attn.in_proj_weight', 'attn.in_proj_bias',
               'attn.out_proj.weight', 'attn.out_proj.bias', 'ln_2.weight', 'ln_2.bias',
               'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias')
# timm ViT block -> mmseg TransformerEncoderLayer (our side adapter)
_TIMM_BLOCK = {
    'norm1.weight': 'ln1.weight', 'norm1.bias': 'ln1.bias',
    'attn.qkv.weight': 'attn.attn.in_proj_weight', 'attn.qkv.bias': 'attn.attn.in_proj_bias',
    'attn.proj.weight': 'attn.attn.out_proj.weight', 'attn.proj.bias': 'attn.attn.out_proj.bias',
    'norm2.weight': 'ln2.weight', 'norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight', 'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight', 'mlp.fc2.bias': 'ffn.layers.1.bias',
}
_PLAIN = {
    'clip_visual_extractor.conv1.weight': 'backbone.visual.conv1.weight',
    'clip_visual_extractor.class_embedding': 'backbone.visual.class_embedding',
    'clip_visual_extractor.positional_embedding': 'backbone.visual.positional_embedding',
    'clip_visual_extractor.ln_pre.weight': 'backbone.visual.ln_pre.weight',
    'clip_visual_extractor.ln_pre.bias': 'backbone.visual.ln_pre.bias',
    'clip_rec_head.ln_post.weight': 'decode_head.recognizer.ln_post.weight',
    'clip_rec_head.ln_post.bias': 'decode_head.recognizer.ln_post.bias',
    'clip_rec_head.proj': 'decode_head.recognizer.proj',
    'side_adapter_network.vit_model.patch_embed.proj.weight':
        'decode_head.side_adapter.patch_embed.projection.weight',
    'side_adapter_network.vit_model.patch_embed.proj.bias':
        'decode_head.side_adapter.patch_embed.projection.bias',
    'side_adapter_network.vit_model.pos_embed': 'decode_head.side_adapter.pos_embed',
    'side_adapter_network.query_embed': 'decode_head.side_adapter.query_embed',
    'side_adapter_network.query_pos_embed': 'decode_head.side_adapter.query_pos_embed',
    'ov_classifier.token_embedding.weight': 'text_encoder.tower.token_embedding.weight',
    'ov_classifier.positional_embedding': 'text_encoder.tower.positional_embedding',
    'ov_classifier.ln_final.weight': 'text_encoder.tower.ln_final.weight',
    'ov_classifier.ln_final.bias': 'text_encoder.tower.ln_final.bias',
    'ov_classifier.text_projection': 'text_encoder.tower.text_projection',
    'ov_classifier.bg_embed': 'decode_head.void_embed',
}
_OPTIONAL_PLAIN = ('side_adapter_network.vit_model.patch_embed.proj.bias', )
# (official prefix + block index, inner-name map or tuple, mmovss prefix)
_BLOCKS = [
    (r'clip_visual_extractor\.resblocks\.(\d+)\.(.+)', _CLIP_BLOCK,
     'backbone.visual.transformer.resblocks.'),
    (r'clip_rec_head\.resblocks\.(\d+)\.(.+)', _CLIP_BLOCK, 'decode_head.recognizer.blocks.'),
    (r'ov_classifier\.transformer\.resblocks\.(\d+)\.(.+)', _CLIP_BLOCK,
     'text_encoder.tower.transformer.resblocks.'),
    (r'side_adapter_network\.vit_model\.blocks\.(\d+)\.(.+)', _TIMM_BLOCK,
     'decode_head.side_adapter.layers.'),
]
_FUSION = re.compile(r'side_adapter_network\.fusion_layers\.layer_(\d+)\.input_proj\.([01])\.'
                     r'(weight|bias)$')
_MLP = re.compile(r'side_adapter_network\.mask_decoder\.(query_mlp|pix_mlp|attn_mlp)\.layers\.'
                  r'(\d+)\.(weight|bias)$')
_MLP_NAMES = {'query_mlp': 'query_mlp', 'pix_mlp': 'pixel_mlp', 'attn_mlp': 'bias_mlp'}
_BIAS_SCALING = ('side_adapter_network.mask_decoder.bias_scaling.weight',
                 'side_adapter_network.mask_decoder.bias_scaling.bias')
_SIGNATURE = ('clip_visual_extractor.conv1.weight', 'clip_rec_head.proj',
              'side_adapter_network.query_embed', 'ov_classifier.bg_embed')


def matches(state_dict: Mapping) -> bool:
    """Whether the keys are those of the official SAN (its four parts)."""
    try:
        keys = unwrap_state_dict(state_dict).keys()
    except ConversionError:
        return False
    return all(k in keys for k in _SIGNATURE)


def fusion_targets(state_dict: Mapping) -> List[int]:
    """Side-adapter blocks (0: before the first) that receive a CLIP map, sorted.

    The ``i``-th of them is our ``side_adapter.fusion_index[i]``; which CLIP
    layer feeds it (``FUSION_MAP``) is not in the weights (our backbone's
    ``out_indices``).
    """
    keys = unwrap_state_dict(state_dict).keys()
    return sorted({int(m.group(1)) for m in map(_FUSION.match, keys) if m})


def _complete_groups(fmt_keys: Dict[Tuple[str, int], set], expected, what: str,
                     missing: List[str]) -> None:
    """Blocks numbered 0..N-1 and each with every expected inner name."""
    indices = sorted({i for (_, i) in fmt_keys})
    if not indices:
        missing.append(f'{what}.0.*')
        return
    for i in range(indices[-1] + 1):
        have = fmt_keys.get((what, i), set())
        missing.extend(f'{what}.{i}.{name}' for name in expected if name not in have)


def convert(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Official SAN state dict -> mmovss ``OpenVocabEncoderDecoder`` keys.

    Args:
        state_dict (Mapping): The loaded checkpoint (``{'model': ...}`` or the
            state dict itself).

    Returns:
        dict: mmovss keys -> tensors (the values unchanged; shapes already
        match: ``proj`` is used as ``x @ proj`` by both, ``pos_embed`` has no
        class-token entry in both).

    Raises:
        ConversionError: Unknown keys, or keys the format must have that the
            file lacks (a truncated file, or another format).
    """
    state = unwrap_state_dict(state_dict)
    if not any(k in state for k in _SIGNATURE):
        raise ConversionError(
            f'Not an official SAN checkpoint: none of {list(_SIGNATURE)} is present '
            f'(first keys: {list(state)[:5]}). For mmseg-format SAN files use '
            f'tools/model_converters/san_mmseg_to_mmovss.py.')
    out = OrderedDict()
    unknown, missing = [], []
    blocks: Dict[str, Dict[Tuple[str, int], set]] = {p: {} for p, _, _ in _BLOCKS}
    fusions: Dict[int, Dict[str, torch.Tensor]] = {}
    mlps: Dict[str, Dict[int, set]] = {n: {} for n in _MLP_NAMES}
    for key, value in state.items():
        if key in DROPPED:
            continue
        if key in _PLAIN:
            out[_PLAIN[key]] = value
            continue
        if key in _BIAS_SCALING:
            out['decode_head.side_adapter.decoder.bias_scaling.' + key.rsplit('.', 1)[1]] = value
            continue
        for pattern, inner, prefix in _BLOCKS:
            m = re.fullmatch(pattern, key)
            if m is None:
                continue
            index, name = int(m.group(1)), m.group(2)
            if name not in inner:
                unknown.append(key)
            else:
                new = inner[name] if isinstance(inner, dict) else name
                out[f'{prefix}{index}.{new}'] = value
                blocks[pattern].setdefault((pattern, index), set()).add(name)
            break
        else:
            m = _FUSION.match(key)
            if m:
                fusions.setdefault(int(m.group(1)), {})[f'{m.group(2)}.{m.group(3)}'] = value
                continue
            m = _MLP.match(key)
            if m:
                mlp, layer, kind = m.group(1), int(m.group(2)), m.group(3)
                out[f'decode_head.side_adapter.decoder.{_MLP_NAMES[mlp]}.layers.{layer}.'
                    f'{kind}'] = value
                mlps[mlp].setdefault(layer, set()).add(kind)
                continue
            unknown.append(key)
    # fusion layers: ModuleDict 'layer_<side block>' -> our list in block order
    for j, target in enumerate(sorted(fusions)):
        for name in ('0.weight', '0.bias', '1.weight', '1.bias'):
            if name not in fusions[target]:
                missing.append(f'side_adapter_network.fusion_layers.layer_{target}.'
                               f'input_proj.{name}')
                continue
            out[f'decode_head.side_adapter.clip_fusions.{j}.{name}'] = fusions[target][name]
    if not fusions:
        missing.append('side_adapter_network.fusion_layers.layer_0.*')
    for pattern, inner, _ in _BLOCKS:
        what = pattern.split(r'\.(\d+)')[0].replace('\\', '')
        _complete_groups({(what, i): names for (_, i), names in blocks[pattern].items()},
                         inner, what, missing)
    for mlp, layers in mlps.items():
        what = f'side_adapter_network.mask_decoder.{mlp}.layers'
        _complete_groups({(what, i): kinds for i, kinds in layers.items()},
                         ('weight', 'bias'), what, missing)
    missing += [k for k in _PLAIN if k not in state and k not in _OPTIONAL_PLAIN]
    if (_BIAS_SCALING[0] in state) != (_BIAS_SCALING[1] in state):
        missing += [k for k in _BIAS_SCALING if k not in state]
    check_accounted(_NAME, unknown, missing)
    return out
