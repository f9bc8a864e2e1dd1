"""mmovss models next to MMSegmentation 1.2.2's, carrying the same weights.

For the comparisons of ``tools/analysis_tools/benchmark_san.py`` (SAN) and
``benchmark_text_encoder.py`` (SAN's ``CLIPTextEncoder``): the mmseg model
gets the random weights of the mmovss one through the SAN checkpoint mapping
(:mod:`mmovss.converters.san_mmseg`), so both compute the same function and
their outputs and times can be compared.
"""
import copy
import math
import os.path as osp
from typing import Sequence, Tuple

import torch

from .random_weights import quiet_init_weights, use_random_weights


def build_san_pair(names: Sequence[str], queries: int = 100
                   ) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """mmovss's SAN and mmseg's SAN (ViT-B/16) with the same random weights.

    Both at full size, from ``configs/_base_/models/san_vit-b16.py`` of each
    project (nothing is downloaded); mmovss's weights are copied into mmseg's
    model with :func:`mmovss.converters.mmovss_to_mmseg`, strictly.

    Args:
        names: The vocabulary (one name per class).
        queries: Mask queries of the side adapter.

    Returns:
        tuple: (mmovss model, mmseg model), in eval mode.
    """
    import mmovss  # noqa: F401  (registers the modules)
    from mmovss.apis.model_zoo import configs_root
    from mmovss.converters import mmovss_to_mmseg

    import mmseg
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    ours_cfg = Config.fromfile(
        osp.join(configs_root(), '_base_', 'models', 'san_vit-b16.py'))
    model_cfg = copy.deepcopy(ours_cfg.model)
    model_cfg.pop('data_preprocessor')
    use_random_weights(model_cfg)  # no download
    model_cfg.text_encoder.cache_dir = None
    model_cfg.vocabulary = list(names)
    model_cfg.test_cfg = dict(mode='whole')
    model_cfg.decode_head.side_adapter.num_queries = queries
    ours = MODELS.build(model_cfg).eval()
    quiet_init_weights(ours)

    ref_cfg = Config.fromfile(
        osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', '_base_',
                 'models', 'san_vit-b16.py')).model
    ref_cfg.pop('data_preprocessor')
    ref_cfg.pop('pretrained')
    ref_cfg.text_encoder.vocabulary = list(names)
    ref_cfg.text_encoder.dataset_name = None
    ref_cfg.decode_head.num_classes = len(names)
    ref_cfg.decode_head.train_cfg = None
    ref_cfg.decode_head.san_cfg.num_queries = queries
    ref_cfg.decode_head.maskgen_cfg.sos_token_num = queries
    ref_cfg.decode_head.loss_decode = dict(type='CrossEntropyLoss')
    with DefaultScope.overwrite_default_scope('mmseg'):
        ref = MODELS.build(ref_cfg).eval()
    scale = math.log(float(ours.text_encoder.logit_scale))
    ref.load_state_dict(mmovss_to_mmseg(ours.state_dict(), scale),
                        strict=True)
    return ours, ref


def build_mmseg_text_encoder(ours, templates: Sequence[str]):
    """mmseg's ``CLIPTextEncoder`` (SAN) carrying the weights of ``ours``.

    Args:
        ours (OpenCLIPTextEncoder): An mmovss text encoder.
        templates: The prompt templates mmseg's encoder uses.

    Returns:
        nn.Module: mmseg's encoder in eval mode, with the same tower
        (keys mapped by :func:`mmovss.converters.convert_key`, the mapping
        of SAN checkpoints) and the same temperature.

    Raises:
        RuntimeError: A weight finds no place (or stays unset).
    """
    from mmovss.converters import convert_key

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    tower = ours.tower
    width = tower.positional_embedding.shape[1]
    blocks = tower.transformer.resblocks
    theirs = MODELS.build(
        dict(type='CLIPTextEncoder', vocabulary=['unused'],
             templates=list(templates),
             context_length=tower.positional_embedding.shape[0],
             embed_dims=width, num_layers=len(blocks),
             num_heads=blocks[0].attn.num_heads,
             output_dims=tower.text_projection.shape[1],
             cache_feature=False, cat_bg=False))
    prefix = 'text_encoder.'
    state, unplaced = {}, []
    for key, value in tower.state_dict().items():
        new = convert_key(f'{prefix}tower.{key}', to_mmovss=False)
        if new is None or not new.startswith(prefix):
            unplaced.append(key)
        else:
            state[new[len(prefix):]] = value
    state['logit_scale'] = ours.logit_scale.log()
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    if missing or unexpected or unplaced:
        raise RuntimeError(f'weight mapping failed: missing={missing} '
                           f'unexpected={unexpected} unplaced={unplaced}')
    return theirs.eval()
