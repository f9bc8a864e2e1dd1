"""LSeg's official checkpoints (github.com/isl-org/lang-seg) -> mmovss.

The released models are PyTorch-Lightning checkpoints of ``LSegModule``
(``modules/lseg_module.py``), e.g. the ADE20K demo model
``demo_e200.ckpt`` (ViT-L/16 + CLIP ViT-B/32 text): ``state_dict`` holds
the ``LSegNet`` (``modules/models/lseg_net.py``) under ``net.``::

    net.clip_pretrained.*               OpenAI CLIP ViT-B/32 (``clip.load``)
    net.pretrained.model.*              timm ViT-L/16 (``vit_large_patch16_384``)
    net.pretrained.act_postprocess{i}.* DPT reassemble (readout, 1x1, resize)
    net.scratch.layer{i}_rn.*           3x3 convs to the DPT width
    net.scratch.refinenet{k}.*          DPT fusion blocks (refinenet4 deepest)
    net.scratch.head1.*                 1x1 conv to the joint space
    net.scratch.head_block.*            spatial regularisation (arch_option 1/2)

They map onto ``OpenVocabEncoderDecoder`` with ``TimmViT`` /
``LSegTextEncoder`` / ``LSegHead`` (``configs/lseg/``)::

    python tools/model_converters/lseg_official_to_mmovss.py demo_e200.ckpt lseg.pth

Every key is mapped or dropped with a reason (:data:`DROPPED`); anything else,
or a missing part (a truncated download), raises
:class:`~mmovss.converters.common.ConversionError`.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch

from .common import ConversionError, check_accounted, unwrap_state_dict

__all__ = ['FORMAT', 'DROPPED', 'LOGIT_SCALE', 'matches', 'convert', 'convert_checkpoint',
           'conversion_meta', 'official_readout', 'official_prefix', 'load_lightning_checkpoint']

FORMAT = 'lseg_official'

#: LSeg's fixed temperature: ``nn.Parameter(torch.ones([]) * np.log(1 / 0.07)).exp()``
#: is a plain tensor (not registered), so it is not in the checkpoint.
LOGIT_SCALE = 1 / 0.07

#: (regex on the key after the ``net.`` prefix, reason) of keys with no place.
DROPPED: List[Tuple[str, str]] = [
    (r'^clip_pretrained\.visual\.',
     "CLIP's image tower: LSeg encodes images with its own ViT, CLIP only embeds the labels"),
    (r'^clip_pretrained\.logit_scale$',
     "CLIP's temperature: LSeg scores with its own fixed 1/0.07"),
    (r'^pretrained\.model\.norm\.',
     "timm's final norm: forward_vit reads the hooked blocks; forward_flex's normed output "
     '(glob) is discarded'),
    (r'^pretrained\.model\.head\.',
     "timm's ImageNet classifier: never called by forward_flex"),
    (r'^scratch\.refinenet4\.resConfUnit1\.',
     'refinenet4 fuses a single input: its first residual unit never runs'),
    (r'^(criterion|train_accuracy|val_accuracy|val_iou)\.',
     "LSegmentationModule's training loss / metrics state, not part of the network"),
]

_TEXT_KEYS = ('token_embedding.weight', 'positional_embedding', 'ln_final.weight',
              'ln_final.bias', 'text_projection')
_VIT_KEYS = ('cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias')
_VIT_BLOCK = ('norm1.weight', 'norm1.bias', 'attn.qkv.weight', 'attn.qkv.bias',
              'attn.proj.weight', 'attn.proj.bias', 'norm2.weight', 'norm2.bias',
              'mlp.fc1.weight', 'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias')
_CLIP_BLOCK = ('ln_1.weight', 'ln_1.bias', 'attn.in_proj_weight', 'attn.in_proj_bias',
               'attn.out_proj.weight', 'attn.out_proj.bias', 'ln_2.weight', 'ln_2.bias',
               'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight', 'mlp.c_proj.bias')
_BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')

# (regex after the prefix, replacement): the first match applies
_RULES: List[Tuple[str, object]] = [
    (r'^clip_pretrained\.(.+)$', r'text_encoder.tower.\1'),
    (r'^pretrained\.model\.(.+)$', r'backbone.model.\1'),
    (r'^pretrained\.act_postprocess([1-4])\.0\.project\.0\.(weight|bias)$',
     lambda m: f'decode_head.reassemble.readout_projects.{int(m[1]) - 1}.0.{m[2]}'),
    (r'^pretrained\.act_postprocess([1-4])\.3\.(weight|bias)$',
     lambda m: f'decode_head.reassemble.projects.{int(m[1]) - 1}.conv.{m[2]}'),
    (r'^pretrained\.act_postprocess([124])\.4\.(weight|bias)$',
     lambda m: f'decode_head.reassemble.resize_layers.{int(m[1]) - 1}.{m[2]}'),
    (r'^scratch\.layer([1-4])_rn\.weight$',
     lambda m: f'decode_head.convs.{int(m[1]) - 1}.conv.weight'),
    # refinenet4 (deepest, first to run) is our fusion_blocks.0
    (r'^scratch\.refinenet([1-4])\.out_conv\.(weight|bias)$',
     lambda m: f'decode_head.fusion_blocks.{4 - int(m[1])}.project.conv.{m[2]}'),
    (r'^scratch\.refinenet([1-4])\.resConfUnit([12])\.conv([12])\.weight$',
     lambda m: f'decode_head.fusion_blocks.{4 - int(m[1])}.res_conv_unit{m[2]}.'
               f'conv{m[3]}.conv.weight'),
    (r'^scratch\.refinenet([1-4])\.resConfUnit([12])\.bn([12])\.(\w+)$',
     lambda m: f'decode_head.fusion_blocks.{4 - int(m[1])}.res_conv_unit{m[2]}.'
               f'conv{m[3]}.bn.{m[4]}'),
    (r'^scratch\.head1\.(weight|bias)$', r'decode_head.to_embed.\1'),
    (r'^scratch\.head_block\.depthwise\.depthwise\.(weight|bias)$',
     r'decode_head.regularization.kernel.\1'),
]


def official_prefix(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """``'net.'`` (Lightning checkpoint) or ``''`` (a bare ``LSegNet``), else None."""
    for prefix in ('net.', ''):
        if any(k.startswith(prefix + 'scratch.refinenet') for k in state_dict) and \
                any(k.startswith(prefix + 'pretrained.act_postprocess') for k in state_dict):
            return prefix
    return None


def matches(state_dict: Dict[str, torch.Tensor]) -> bool:
    """LSeg's key signature: DPT ``scratch.refinenet*`` and ``act_postprocess*``."""
    return official_prefix(state_dict) is not None


def official_readout(state_dict: Dict[str, torch.Tensor]) -> Optional[str]:
    """``'project'`` when the checkpoint has readout projections, else None
    (``'ignore'`` and ``'add'`` have no parameters and cannot be told apart)."""
    prefix = official_prefix(state_dict) or ''
    found = [i for i in range(1, 5)
             if f'{prefix}pretrained.act_postprocess{i}.0.project.0.weight' in state_dict]
    return 'project' if found else None


def _expected(keys: List[str]) -> List[str]:
    """Keys (after the prefix) a complete LSegNet must have, given the blocks seen."""
    out = [f'clip_pretrained.{k}' for k in _TEXT_KEYS]
    out += [f'pretrained.model.{k}' for k in _VIT_KEYS]
    for pattern, block_keys, head in (
            (r'^pretrained\.model\.blocks\.(\d+)\.', _VIT_BLOCK, 'pretrained.model.blocks'),
            (r'^clip_pretrained\.transformer\.resblocks\.(\d+)\.', _CLIP_BLOCK,
             'clip_pretrained.transformer.resblocks')):
        ids = {int(m[1]) for m in (re.match(pattern, k) for k in keys) if m}
        for i in range(max(ids) + 1 if ids else 1):
            out += [f'{head}.{i}.{k}' for k in block_keys]
    project = any('.0.project.0.' in k for k in keys)
    for i in range(1, 5):
        out += [f'pretrained.act_postprocess{i}.3.weight',
                f'pretrained.act_postprocess{i}.3.bias', f'scratch.layer{i}_rn.weight']
        if i != 3:
            out += [f'pretrained.act_postprocess{i}.4.weight',
                    f'pretrained.act_postprocess{i}.4.bias']
        if project:
            out += [f'pretrained.act_postprocess{i}.0.project.0.weight',
                    f'pretrained.act_postprocess{i}.0.project.0.bias']
        out += [f'scratch.refinenet{i}.out_conv.weight', f'scratch.refinenet{i}.out_conv.bias']
        for unit in ((2, ) if i == 4 else (1, 2)):
            for conv in (1, 2):
                out.append(f'scratch.refinenet{i}.resConfUnit{unit}.conv{conv}.weight')
                out += [f'scratch.refinenet{i}.resConfUnit{unit}.bn{conv}.{b}' for b in _BN]
    out += ['scratch.head1.weight', 'scratch.head1.bias']
    if any(k.startswith('scratch.head_block.') for k in keys):
        out += ['scratch.head_block.depthwise.depthwise.weight',
                'scratch.head_block.depthwise.depthwise.bias']
    return out


def convert(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Converts an official LSeg state dict (or Lightning checkpoint) to mmovss keys.

    Adds ``decode_head.log_logit_scale = log(1/0.07)`` (the official fixed
    temperature, which the checkpoint does not store). Tensors keep their
    dtype (the CLIP text weights of a CUDA ``clip.load`` are float16).

    Raises:
        ConversionError: Not an LSeg checkpoint, an unknown key, or missing
            parts (named, with counts).
    """
    state_dict = unwrap_state_dict(state_dict)
    prefix = official_prefix(state_dict)
    if prefix is None:
        raise ConversionError(
            'Not an LSeg (official) checkpoint: no scratch.refinenet* / '
            'pretrained.act_postprocess* keys. Pass the LSegModule checkpoint released by '
            'github.com/isl-org/lang-seg (e.g. demo_e200.ckpt), or the converter of its '
            'own format (mmovss.converters.formats.detect_format).')
    out: Dict[str, torch.Tensor] = OrderedDict()
    unknown, seen = [], []
    for key, value in state_dict.items():
        rest = key[len(prefix):] if key.startswith(prefix) else None
        if rest is None:
            if re.match(DROPPED[-1][0], key):
                continue
            unknown.append(key)
            continue
        seen.append(rest)
        if any(re.match(pattern, rest) for pattern, _ in DROPPED):
            continue
        for pattern, repl in _RULES:
            m = re.match(pattern, rest)
            if m:
                out[m.expand(repl) if isinstance(repl, str) else repl(m)] = value
                break
        else:
            unknown.append(key)
    missing = [prefix + k for k in _expected(seen) if k not in set(seen)]
    check_accounted('LSeg (official)', unknown, missing)
    out['decode_head.log_logit_scale'] = torch.tensor(math.log(LOGIT_SCALE))
    return out


def conversion_meta(checkpoint) -> dict:
    """Facts kept beside the converted weights: the readout found, the fixed
    logit scale and the official hyper-parameters (plain values only)."""
    state = unwrap_state_dict(checkpoint)
    meta = dict(readout_type=official_readout(state) or 'ignore/add', logit_scale=LOGIT_SCALE)
    if isinstance(checkpoint, dict):
        hyper = checkpoint.get('hyper_parameters')
        if isinstance(hyper, dict):
            meta['official_hyper_parameters'] = {
                k: v for k, v in hyper.items() if isinstance(v, (int, float, str, bool))}
    return meta


def convert_checkpoint(checkpoint) -> Tuple[Dict[str, torch.Tensor], dict]:
    """A loaded checkpoint file -> (mmovss state dict, :func:`conversion_meta`)."""
    return convert(unwrap_state_dict(checkpoint)), conversion_meta(checkpoint)


def load_lightning_checkpoint(path: str) -> dict:
    """Reads a PyTorch-Lightning checkpoint weights-only, without its Python objects.

    PyTorch-Lightning 1.x keys ``callbacks`` by the callback *class* (e.g.
    ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint``), which
    ``torch.load(weights_only=True)`` refuses. Each such global is replaced by
    an inert stand-in (:class:`mmovss.runtime.InertObject`, named after it): nothing of the
    file's code is imported or run, and the tensors (``state_dict``) load as
    they are.

    Raises:
        FileNotFoundError / ValueError: Missing, truncated or corrupt file.
    """
    from mmovss.runtime import check_checkpoint_file, load_with_inert_objects
    check_checkpoint_file(path)
    return load_with_inert_objects(path)
