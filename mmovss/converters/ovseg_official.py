"""Released OVSeg checkpoints (official layout) -> mmovss keys.

The official model (github.com/facebookresearch/ov-seg, ``OVSeg`` in
``open_vocab_seg/ovseg_model.py``) holds a detectron2 backbone, a MaskFormer
head ``sem_seg_head`` and the mask-adapted CLIP in ``clip_adapter``. The
released files (``GETTING_STARTED.md``) are

* ``ovseg_R101c_vitB16_ft_mpt.pth``: DeepLab ResNet-101c + CLIP ViT-B/16,
* ``ovseg_swinbase_vitL14_ft_mpt.pth``: Swin-B + CLIP ViT-L/14,
* ``ovseg_swinbase_vitL14_mpt_only.pt``: the same with the original CLIP and
  only the mask prompts tuned (the mask-prompt-tuned CLIP),

all in this one layout (``{'model': state_dict}``). mmovss's model is a
:class:`~mmovss.models.segmentors.TwoStageEncoderDecoder` with an
:class:`~mmovss.models.decode_heads.OVSegHead` (configs
``configs/ovseg/ovseg-official_*``)::

    backbone.*  (DeepLab ResNet)     -> backbone.* of mmseg's ResNetV1c
    backbone.*  (Swin)               -> backbone.* of mmseg's SwinTransformer
    sem_seg_head.pixel_decoder.*     -> decode_head.mask_decoder.pixel_decoder.*
    sem_seg_head.predictor.*         -> decode_head.mask_decoder.query_decoder.*,
                                        .mask_embed.*, decode_head.segment_proj.*
    clip_adapter.non_object_embedding -> decode_head.void_embed
    clip_adapter.clip_model.visual.*  -> decode_head.region_classifier.clip.visual.*
    clip_adapter.clip_model.visual.mask_embedding -> decode_head.region_classifier.mask_prompts
    clip_adapter.clip_model.<text>    -> text_encoder.tower.*

Dropped keys, each for a stated reason (:data:`DROPPED`). Every other key
must have a place, and every place of the model family must be filled,
else :class:`~mmovss.converters.common.ConversionError`.

    python tools/model_converters/ovseg_official_to_mmovss.py \\
        ovseg_R101c_vitB16_ft_mpt.pth ovseg_r101c.pth
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

from .common import ConversionError, check_accounted, unwrap_state_dict

__all__ = ['FORMAT', 'DROPPED', 'matches', 'convert', 'convert_key', 'official_backbone',
           'conversion_meta', 'deeplab_resnet_key', 'd2_swin_key', 'convert_deeplab_resnet',
           'convert_d2_swin']

FORMAT = 'ovseg_official'

HEAD = 'sem_seg_head.'
PIX = HEAD + 'pixel_decoder.'
PRED = HEAD + 'predictor.'
CLIP = 'clip_adapter.clip_model.'

DROPPED: Dict[str, str] = {
    r'^criterion\.empty_weight$':
        'training-loss class weights (171 COCO-Stuff classes + no-object weight); our '
        'criterion builds its own from the config (no_object_weight=0.1)',
    r'^clip_adapter\.pixel_(mean|std)$':
        "CLIP's normalisation constants (OpenAI mean/std x 255); RegionCLIPClassifier "
        'has the same defaults (clip_mean/clip_std)',
    r'^pixel_(mean|std)$':
        'the detectron2 model\'s input normalisation; ours is the data preprocessor\'s '
        '(configs set the same PIXEL_MEAN/PIXEL_STD)',
    r'^clip_adapter\.clip_model\.logit_scale$':
        'unused by OVSeg: both branches scale cosines by a fixed 100 '
        '(ClipAdapter.get_sim_logits(temperature=100)); configs set '
        'region_classifier.logit_scale=100 and the head temperature 0.01',
    r'^clip_adapter\.clip_model\.(input_resolution|context_length|vocab_size)$':
        'integers of OpenAI CLIP archives, not weights (our towers are configured)',
    r'^backbone\.layers\.\d+\.blocks\.\d+\.attn\.relative_position_index$':
        'a constant of the window size; our Swin computes the same table',
    r'^backbone\.layers\.\d+\.blocks\.\d+\.attn_mask$':
        'a constant of the window size and shift (some Swin versions store it); '
        'recomputed in the forward',
}
"""Official keys without an mmovss place (regex -> reason)."""

_TEXT_KEYS = ('token_embedding.weight', 'positional_embedding', 'text_projection',
              'ln_final.weight', 'ln_final.bias')


def _dropped(key: str) -> bool:
    return any(re.match(p, key) for p in DROPPED)


# ------------------------------------------------------------------ backbones
def deeplab_resnet_key(key: str) -> Optional[str]:
    """A (prefix-free) detectron2 DeepLab ResNet key -> mmseg ``ResNetV1c``'s.

    ``DeepLabStem`` (``detectron2/projects/DeepLab/deeplab/resnet.py``): three
    3x3 convs ``stem.conv{1,2,3}`` each with its norm -> ``stem.{0,3,6}`` /
    ``stem.{1,4,7}``; ``res{k}.{i}.conv{j}`` (+``.norm``) -> ``layer{k-1}.{i}
    .conv{j}`` / ``.bn{j}``; ``shortcut`` -> ``downsample.{0,1}``. None: not a
    key of that layout.
    """
    m = re.match(r'^stem\.conv([123])\.(weight|norm\.(\w+))$', key)
    if m:
        idx = 3 * (int(m.group(1)) - 1)
        return f'stem.{idx}.weight' if m.group(3) is None else f'stem.{idx + 1}.{m.group(3)}'
    m = re.match(r'^res([2-5])\.(\d+)\.(conv[123]|shortcut)\.(weight|norm\.(\w+))$', key)
    if not m:
        return None
    stage, block, conv, norm = int(m.group(1)) - 1, m.group(2), m.group(3), m.group(5)
    base = f'layer{stage}.{block}.'
    if conv == 'shortcut':
        return base + ('downsample.0.weight' if norm is None else f'downsample.1.{norm}')
    return base + (f'{conv}.weight' if norm is None else f'bn{conv[-1]}.{norm}')


def d2_swin_key(key: str) -> Optional[str]:
    """A (prefix-free) official Swin key (Swin-Transformer / Mask2Former's
    ``D2SwinTransformer``, ``open_vocab_seg/modeling/backbone/swin.py``) ->
    mmseg ``SwinTransformer``'s; None: not a key of that layout."""
    rules = [
        (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
        (r'^patch_embed\.norm\.', 'patch_embed.norm.'),
        (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.(relative_position_bias_table|'
         r'relative_position_index)$', r'stages.\1.blocks.\2.attn.w_msa.\3'),
        (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.(qkv|proj)\.',
         r'stages.\1.blocks.\2.attn.w_msa.\3.'),
        (r'^layers\.(\d+)\.blocks\.(\d+)\.(norm[12])\.', r'stages.\1.blocks.\2.\3.'),
        (r'^layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.', r'stages.\1.blocks.\2.ffn.layers.0.0.'),
        (r'^layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.', r'stages.\1.blocks.\2.ffn.layers.1.'),
        (r'^layers\.(\d+)\.downsample\.(reduction|norm)\.', r'stages.\1.downsample.\2.'),
        (r'^(norm[0-3])\.', r'\1.'),
    ]
    for pattern, repl in rules:
        new, n = re.subn(pattern, repl, key, count=1)
        if n and (new.endswith(('.weight', '.bias')) or 'relative_position' in new):
            return new
    return None


def _unfold_order(value: torch.Tensor) -> torch.Tensor:
    """Patch merging: the official concatenation ``[x0, x1, x2, x3]`` (pixels
    (0,0), (1,0), (0,1), (1,1)) -> mmseg's ``nn.Unfold`` order (channel-major,
    then (0,0), (1,0), (0,1), (1,1) as mmseg's ``swin2mmseg``)."""
    if value.dim() == 2:
        out_c, in_c = value.shape
        value = value.reshape(out_c, 4, in_c // 4)
        return value[:, [0, 2, 1, 3], :].transpose(1, 2).reshape(out_c, in_c)
    in_c = value.shape[0]
    value = value.reshape(4, in_c // 4)
    return value[[0, 2, 1, 3], :].transpose(0, 1).reshape(in_c)


def _convert_backbone(state: Mapping[str, torch.Tensor], rename: Callable,
                      fmt: str, prefix_in: str = '', prefix_out: str = ''
                      ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    out, unknown = OrderedDict(), []
    for key, value in state.items():
        if not key.startswith(prefix_in):
            continue
        new = rename(key[len(prefix_in):])
        if new is None:
            if not _dropped(key):
                unknown.append(key)
            continue
        if fmt == 'swin' and '.downsample.' in new:
            value = _unfold_order(value)
        out[prefix_out + new] = value
    return out, unknown


def convert_deeplab_resnet(state: Mapping[str, torch.Tensor], prefix_in: str = '',
                           prefix_out: str = '') -> Dict[str, torch.Tensor]:
    """A detectron2 DeepLab ResNet state dict -> ``ResNetV1c`` (``stem_channels`` =
    ``STEM_OUT_CHANNELS``, ``multi_grid`` = ``RES5_MULTI_GRID``).

    FrozenBN's four buffers map to BatchNorm's; ``num_batches_tracked`` (which
    FrozenBN lacks) is added as 0 so that the result loads strictly.

    Raises:
        ConversionError: A key under ``prefix_in`` is not of that layout.
    """
    out, unknown = _convert_backbone(state, deeplab_resnet_key, 'resnet', prefix_in,
                                     prefix_out)
    check_accounted('detectron2 DeepLab ResNet', unknown)
    for key in [k for k in out if k.endswith('.running_var')]:
        out[key[:-len('running_var')] + 'num_batches_tracked'] = torch.tensor(0)
    return out


def convert_d2_swin(state: Mapping[str, torch.Tensor], prefix_in: str = '',
                    prefix_out: str = '') -> Dict[str, torch.Tensor]:
    """An official (D2)Swin state dict -> mmseg ``SwinTransformer`` (patch-merging
    weights reordered for mmseg's unfold, ``relative_position_index`` kept when
    present: it equals ours).

    Raises:
        ConversionError: A key under ``prefix_in`` is not of that layout.
    """
    out, unknown = _convert_backbone(state, d2_swin_key, 'swin', prefix_in, prefix_out)
    check_accounted('Swin (official)', unknown)
    return out


def official_backbone(state: Mapping[str, torch.Tensor]) -> str:
    """``'r101c'`` (DeepLab ResNet stem) or ``'swin'`` from the backbone keys."""
    if 'backbone.stem.conv3.weight' in state:
        return 'r101c'
    if 'backbone.patch_embed.proj.weight' in state:
        return 'swin'
    raise ConversionError(
        'OVSeg checkpoint without a known backbone: expected backbone.stem.conv3 '
        '(DeepLab ResNet, ovseg_R101c_*) or backbone.patch_embed.proj (Swin, '
        'ovseg_swinbase_*).')

def conversion_meta(checkpoint) -> dict:
    """Facts kept beside the converted weights: the backbone kind (:func:`official_backbone`)."""
    return dict(backbone=official_backbone(unwrap_state_dict(checkpoint)))


# ---------------------------------------------------------------- head, CLIP
def _head_key(key: str) -> Optional[str]:
    ours = 'decode_head.mask_decoder.'
    m = re.match(r'^adapter_(\d+)\.(weight|norm\.(weight|bias))$', key)
    if m:
        return f'{ours}pixel_decoder.lateral.{int(m.group(1)) - 1}.' + \
            ('0.weight' if m.group(3) is None else f'1.{m.group(3)}')
    m = re.match(r'^layer_(\d+)\.(weight|norm\.(weight|bias))$', key)
    if m:
        idx = int(m.group(1))
        name = 'top' if idx == 4 else f'output.{idx - 1}'
        return f'{ours}pixel_decoder.{name}.' + \
            ('0.weight' if m.group(3) is None else f'1.{m.group(3)}')
    m = re.match(r'^mask_features\.(weight|bias)$', key)
    if m:
        return f'{ours}pixel_decoder.mask_proj.{m.group(1)}'
    return None


_LAYER = {'self_attn': 'self_attn', 'multihead_attn': 'cross', 'linear1': 'ffn.0',
          'linear2': 'ffn.3', 'norm1': 'norms.0', 'norm2': 'norms.1', 'norm3': 'norms.2'}


def _predictor_key(key: str) -> Optional[str]:
    q = 'decode_head.mask_decoder.query_decoder.'
    m = re.match(r'^transformer\.decoder\.layers\.(\d+)\.(\w+)\.(.+)$', key)
    if m and m.group(2) in _LAYER:
        return f'{q}layers.{m.group(1)}.{_LAYER[m.group(2)]}.{m.group(3)}'
    m = re.match(r'^transformer\.decoder\.norm\.(weight|bias)$', key)
    if m:
        return f'{q}norm.{m.group(1)}'
    if key == 'query_embed.weight':
        return f'{q}query_pos.weight'
    m = re.match(r'^input_proj\.(weight|bias)$', key)
    if m:
        return f'{q}input_proj.{m.group(1)}'
    m = re.match(r'^class_embed\.layers\.(\d+)\.(weight|bias)$', key)
    if m:
        return f'decode_head.segment_proj.layers.{m.group(1)}.{m.group(2)}'
    m = re.match(r'^mask_embed\.layers\.(\d+)\.(weight|bias)$', key)
    if m:
        return f'decode_head.mask_decoder.mask_embed.layers.{m.group(1)}.{m.group(2)}'
    return None


def _clip_key(key: str) -> Optional[str]:
    if key == 'visual.mask_embedding':
        return 'decode_head.region_classifier.mask_prompts'
    if key.startswith('visual.'):
        return 'decode_head.region_classifier.clip.' + key
    if key.startswith('transformer.resblocks.') or key in _TEXT_KEYS:
        return 'text_encoder.tower.' + key
    return None


def convert_key(key: str, backbone: str = 'r101c') -> Optional[str]:
    """The mmovss key of an official OVSeg key; None for dropped or unknown keys."""
    if key.startswith('backbone.'):
        rename = deeplab_resnet_key if backbone == 'r101c' else d2_swin_key
        new = rename(key[len('backbone.'):])
        return None if new is None else 'backbone.' + new
    if key.startswith(PIX):
        return _head_key(key[len(PIX):])
    if key.startswith(PRED):
        return _predictor_key(key[len(PRED):])
    if key == 'clip_adapter.non_object_embedding':
        return 'decode_head.void_embed'
    if key.startswith(CLIP):
        return _clip_key(key[len(CLIP):])
    return None


# blocks per stage of the depths build_resnet_deeplab_backbone knows (50, 101, 152)
_DEEPLAB_BLOCKS = {(3, 4, 6, 3): 50, (3, 4, 23, 3): 101, (3, 8, 36, 3): 152}

# the parts every released checkpoint has (a truncated file misses some)
_REQUIRED = (
    'clip_adapter.non_object_embedding', CLIP + 'visual.conv1.weight',
    CLIP + 'visual.proj', CLIP + 'visual.mask_embedding', CLIP + 'token_embedding.weight',
    CLIP + 'text_projection', CLIP + 'ln_final.weight', PRED + 'query_embed.weight',
    PRED + 'input_proj.weight', PRED + 'transformer.decoder.norm.weight',
    PIX + 'mask_features.weight',
)


def _missing(keys, backbone: str) -> List[str]:
    missing = [k for k in _REQUIRED if k not in keys]
    if backbone == 'r101c':
        missing += [f'backbone.{k}' for k in ('stem.conv1.weight', 'res5.0.conv1.weight')
                    if f'backbone.{k}' not in keys]
    else:
        missing += [k for k in ('backbone.norm3.weight',) if k not in keys]
    # every numbered part complete: decoder layers, MLP layers, CLIP blocks, stages
    groups = [
        (r'^' + re.escape(PRED) + r'transformer\.decoder\.layers\.(\d+)\.', 'linear2.bias'),
        (r'^' + re.escape(PRED) + r'class_embed\.layers\.(\d+)\.', 'bias'),
        (r'^' + re.escape(PRED) + r'mask_embed\.layers\.(\d+)\.', 'bias'),
        (r'^' + re.escape(CLIP) + r'visual\.transformer\.resblocks\.(\d+)\.', 'mlp.c_proj.bias'),
        (r'^' + re.escape(CLIP) + r'transformer\.resblocks\.(\d+)\.', 'mlp.c_proj.bias'),
        (r'^' + re.escape(PIX) + r'layer_(\d+)\.', 'weight'),
    ]
    for pattern, last in groups:
        found = {int(m.group(1)) for m in map(re.compile(pattern).match, keys) if m}
        if not found:
            continue
        first = 1 if 'layer_' in pattern else 0
        prefix = pattern[1:].split('(')[0].replace('\\', '')
        missing += [f'{prefix}{i}.{last}' for i in range(first, max(found) + 1)
                    if f'{prefix}{i}.{last}' not in keys]
    if backbone == 'r101c':
        counts = []
        for stage in (2, 3, 4, 5):
            found = {int(m.group(1)) for m in
                     map(re.compile(rf'^backbone\.res{stage}\.(\d+)\.').match, keys) if m}
            missing += [f'backbone.res{stage}.{i}.conv3.norm.running_var'
                        for i in range(max(found, default=-1) + 1)
                        if f'backbone.res{stage}.{i}.conv3.norm.running_var' not in keys]
            if not found:
                missing.append(f'backbone.res{stage}.0.conv1.weight')
            counts.append(max(found, default=-1) + 1)
        if tuple(counts) not in _DEEPLAB_BLOCKS:
            missing.append(f'backbone res2-res5 blocks {tuple(counts)} (DeepLab ResNet '
                           f'depths have {sorted(_DEEPLAB_BLOCKS)})')
    return missing


def _pixel_decoder_v1(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Head weights of format version 1 (pixel decoder directly under ``sem_seg_head.``)
    moved under ``sem_seg_head.pixel_decoder.``, as the official
    ``OpenVocabMaskFormerHead._load_from_state_dict`` does."""
    legacy = re.compile(r'^sem_seg_head\.(?!predictor\.|pixel_decoder\.)')
    return {legacy.sub(PIX, k): v for k, v in state.items()}


def matches(state_dict: Mapping) -> bool:
    """OVSeg's key signature: the CLIP adapter's ``non_object_embedding`` and its
    CLIP's ``visual.mask_embedding`` beside a MaskFormer ``sem_seg_head.predictor``."""
    try:
        keys = unwrap_state_dict(state_dict).keys()
    except ConversionError:
        return False
    return ('clip_adapter.non_object_embedding' in keys
            and CLIP + 'visual.mask_embedding' in keys
            and any(k.startswith(PRED) for k in keys))


def convert(state_dict: Mapping) -> Dict[str, torch.Tensor]:
    """Converts a released OVSeg state dict (or ``{'model': ...}`` checkpoint).

    Value changes: Swin patch-merging weights reordered (:func:`_unfold_order`);
    ``num_batches_tracked`` added for the ResNet's norms.

    Raises:
        ConversionError: Keys with no place (not dropped for a reason in
        :data:`DROPPED`), or parts missing (truncated or foreign file).
    """
    state = _pixel_decoder_v1(unwrap_state_dict(state_dict))
    if not matches(state):
        raise ConversionError(
            'Not an OVSeg checkpoint (no clip_adapter.non_object_embedding / '
            'clip_adapter.clip_model.visual.mask_embedding / sem_seg_head.predictor.*): '
            'pass a released ovseg_*.pth file, or the converter of its own format.')
    backbone = official_backbone(state)
    missing = _missing(state.keys(), backbone)
    if backbone == 'r101c':
        out = convert_deeplab_resnet(state, 'backbone.', 'backbone.')
    else:
        out = convert_d2_swin(state, 'backbone.', 'backbone.')
    unknown = []
    for key, value in state.items():
        if key.startswith('backbone.'):
            continue
        new = convert_key(key, backbone)
        if new is None:
            if not _dropped(key):
                unknown.append(key)
            continue
        out[new] = value
    check_accounted('OVSeg (official)', unknown, missing)
    return out
