"""Builds the official SAN and OVSeg models from their clones, at tiny or released widths.

Shared by the parity generators (``tools/parity/san_official_reference.py``,
``tools/parity/ovseg_reference.py``: tiny widths, fixtures) and the
side-by-side timing (:mod:`mmovss.benchmarking.official_reference`: the
released widths with random weights). Nothing of the official code is
shipped: every function imports it from a clone passed by the caller
(github.com/MendelXu/SAN, github.com/facebookresearch/ov-seg) and builds the
official model classes from the official configs; the stubs replace only the
downloads (CLIP weights) and imports the inference does not use.

SAN (Xu et al., CVPR 2023): :func:`import_san`, :func:`san_open_clip`,
:func:`register_san_side_vit`, :func:`san_cfg`, :func:`randomise_san`,
:data:`SAN_FULL` (the ``san_clip_vit_large_res4_coco.yaml`` sizes).

OVSeg (Liang et al., CVPR 2023): :func:`import_ovseg`,
:func:`ovseg_clip_loader`, :func:`ovseg_cfg`, :func:`randomise_ovseg`,
:data:`OVSEG_RELEASED_CLIP` (the released CLIPs' shapes).
"""
import os.path as osp
import sys
import types
from typing import Optional

import torch

from mmovss.testing.official_parity.official_code import (
    add_source_dirs,
    detectron2_dir,
    stub_module,
)

__all__ = ['SAN_CONFIG', 'SAN_FULL', 'import_san', 'san_open_clip',
           'register_san_side_vit', 'san_cfg', 'randomise_san', 'OVSEG_CONFIGS',
           'OVSEG_RELEASED_CLIP', 'import_ovseg', 'ovseg_clip_loader', 'ovseg_cfg',
           'randomise_ovseg']

# ----------------------------------------------------------------------------- SAN
SAN_CONFIG = 'configs/san_clip_vit_large_res4_coco.yaml'

SAN_FULL = dict(
    clip_cfg=dict(
        embed_dim=768, quick_gelu=True,
        vision_cfg=dict(image_size=336, layers=24, width=1024, patch_size=14, head_width=64),
        text_cfg=dict(context_length=77, vocab_size=49408, width=768, heads=12, layers=12)),
    start_block=18,
    fusion_map=[[0, 0], [6, 1], [12, 2], [18, 3]],
    side_adapter=dict(embed_dims=240, patch_size=16, num_queries=100, num_layers=8,
                      num_heads=6, pretrain_grid=40,
                      decoder=dict(embed_channels=256, mlp_channels=256)),
    deep_supervision_idxs=[7, 8],
)
"""The released SAN ViT-L/14 model (:data:`SAN_CONFIG` and ``san/config.py`` defaults:
open_clip ``ViT-L-14-336`` (OpenAI, QuickGELU), ``FEATURE_LAST_LAYER_IDX`` 18,
``FUSION_MAP`` 0->0, 6->1, 12->2, 18->3, side adapter ``vit_w240n6d8_patch16`` at
``IMAGE_SIZE`` 640 (a 40 x 40 grid), 100 queries, attention-bias decoder of 256
channels, ``DEEP_SUPERVISION_IDXS`` [7, 8]) in the layout of
:data:`mmovss.testing.official_parity.san_official.TINY`."""


def import_san(repo: str, d2: Optional[str] = None):
    """Imports the clone's ``san.model.san`` and ``san.config.add_san_config``.

    ``wandb`` (imported by ``san.utils``) is stubbed, and the ``san`` package is
    registered without running ``san/__init__.py`` (dataset registration and
    test-time augmentation are not used). Importing ``timm_wrapper`` registers
    the released side-adapter ViTs with timm.

    Returns:
        tuple: (``san.model.san`` module, ``add_san_config``).
    """
    if not osp.isfile(osp.join(repo, 'san', 'model', 'san.py')):
        raise FileNotFoundError(f'--official-repo {repo!r} has no san/model/san.py; pass a '
                                f'clone of github.com/MendelXu/SAN.')
    add_source_dirs(detectron2_dir(d2), repo)
    stub_module('wandb')
    if 'san' not in sys.modules:
        package = types.ModuleType('san')
        package.__path__ = [osp.join(repo, 'san')]
        sys.modules['san'] = package
    import san.model.san as san_module
    from san.config import add_san_config
    from san.model.side_adapter.timm_wrapper import PatchEmbed  # noqa: F401
    return san_module, add_san_config


def san_open_clip(clip_cfg: dict):
    """A random open_clip 3.x ``CLIP`` with open_clip 2.16's sequence-first blocks.

    The stand-in for ``open_clip.create_model_and_transforms`` (called by
    ``SAN.from_config``): the SAN code pins open_clip 2.16, whose blocks are
    sequence-first, and calls them directly, so the attention modules get
    ``batch_first = False``; the 3.x ``VisionTransformer`` lacks three
    attributes the code reads (``input_patchnorm``, ``patchnorm_pre_ln``,
    ``global_average_pool``), set to their 2.16 values (False).

    Args:
        clip_cfg (dict): ``open_clip.CLIP`` keyword arguments.

    Returns:
        tuple: (model, None, preprocess) as ``create_model_and_transforms``.
    """
    import open_clip
    model = open_clip.CLIP(**clip_cfg)
    for tower in (model.visual.transformer, model.transformer):
        for block in tower.resblocks:
            block.attn.batch_first = False
    model.visual.input_patchnorm = False
    model.visual.patchnorm_pre_ln = False
    model.visual.global_average_pool = False
    preprocess = types.SimpleNamespace(
        transforms=[types.SimpleNamespace(mean=open_clip.OPENAI_DATASET_MEAN,
                                          std=open_clip.OPENAI_DATASET_STD)])
    return model, None, preprocess


def register_san_side_vit(side: dict) -> str:
    """Registers the side-adapter ViT of ``side``'s sizes with timm, as the clone's
    ``side_adapter/timm_wrapper.py`` builds ``vit_w240n6d8_patch16``; its name.

    A name the clone already registered (the released sizes) is kept as it is.
    """
    from timm.models import is_model, register_model
    from timm.models.vision_transformer import _create_vision_transformer
    name = f"vit_w{side['embed_dims']}n{side['num_heads']}d{side['num_layers']}_patch16"
    if is_model(name):
        return name

    def build(pretrained=False, **kwargs):
        assert not pretrained
        return _create_vision_transformer(
            'vit_tiny_patch16_224', pretrained=False, patch_size=side['patch_size'],
            embed_dim=side['embed_dims'], depth=side['num_layers'],
            num_heads=side['num_heads'], **kwargs)
    build.__name__ = name
    register_model(build)
    return name


def san_cfg(repo: str, add_san_config, vit_name: str, sizes: dict, num_classes: int):
    """The detectron2 config of :data:`SAN_CONFIG` with ``sizes`` (the layout of
    :data:`SAN_FULL`) and ``num_classes`` put in; frozen."""
    from detectron2.config import get_cfg
    cfg = get_cfg()
    add_san_config(cfg)
    cfg.merge_from_file(osp.join(repo, SAN_CONFIG))
    side = sizes['side_adapter']
    cfg.MODEL.SAN.FEATURE_LAST_LAYER_IDX = sizes['start_block']
    cfg.MODEL.SAN.NUM_CLASSES = num_classes
    cfg.MODEL.SIDE_ADAPTER.VIT_NAME = vit_name
    cfg.MODEL.SIDE_ADAPTER.IMAGE_SIZE = side['pretrain_grid'] * side['patch_size']
    cfg.MODEL.SIDE_ADAPTER.NUM_QUERIES = side['num_queries']
    cfg.MODEL.SIDE_ADAPTER.FUSION_MAP = [f'{src}->{dst}' for src, dst in sizes['fusion_map']]
    cfg.MODEL.SIDE_ADAPTER.DEEP_SUPERVISION_IDXS = list(sizes['deep_supervision_idxs'])
    vision = sizes['clip_cfg']['vision_cfg']
    cfg.MODEL.SIDE_ADAPTER.ATTN_BIAS.NUM_HEADS = vision['width'] // vision['head_width']
    cfg.MODEL.SIDE_ADAPTER.ATTN_BIAS.EMBED_CHANNELS = side['decoder']['embed_channels']
    cfg.MODEL.SIDE_ADAPTER.ATTN_BIAS.MLP_CHANNELS = side['decoder']['mlp_channels']
    cfg.freeze()
    return cfg


def randomise_san(model: torch.nn.Module, seed: int) -> None:
    """Makes the random weights of an official ``SAN`` informative, then rounds
    them to float16 values.

    * constant inits (LayerNorm 1/0, zero biases) are perturbed;
    * the side adapter's query tokens get unit scale (0.02 in the official
      init) and the mask decoder's MLPs He-normal weights, so that the mask
      logits and attention biases are O(1) and differ between queries (with
      the official init every [SLS] token would see nearly the same bias and
      every pixel the same class); the mask logits reach O(40), so that
      resizing them before or after the sigmoid differs by far more than the
      tolerance;
    * CLIP's attention output projections get std width^-0.5 (open_clip's
      is sqrt(2 x layers) times smaller), 8 width^-0.5 in the deep blocks
      (only the recognition uses them), so that the biased [SLS] attention
      moves each query's embedding away from the class token's;
    * the text tower's position embedding gets unit scale (0.01), so that
      names of different token lengths embed apart after the template
      ensemble;
    * CLIP's temperature (frozen in SAN, never trained) keeps open_clip's
      initial value.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    net = model.side_adapter_network
    with torch.no_grad():
        model.ov_classifier.positional_embedding.normal_(0, 1.0, generator=gen)
        for gain, blocks in ((1.0, model.clip_visual_extractor.resblocks),
                             (8.0, model.clip_rec_head.resblocks)):
            for block in blocks:
                block.attn.out_proj.weight.normal_(0, gain * block.attn.embed_dim ** -0.5,
                                                   generator=gen)
        net.query_embed.normal_(0, 1.0, generator=gen)
        net.query_pos_embed.normal_(0, 1.0, generator=gen)
        last = f'layers.{net.mask_decoder.query_mlp.num_layers - 1}.'
        for name, p in sorted(net.mask_decoder.named_parameters(), key=lambda kv: kv[0]):
            if 'mlp' in name and name.endswith('weight'):
                std = (2.0 / p[0].numel()) ** 0.5
                if last in name:  # masks O(15), biases O(10): peaked [SLS] attention
                    std = std * (3.0 if name.startswith('attn_mlp') else 1 / 1.5)
                p.normal_(0, std, generator=gen)
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name == 'ov_classifier.logit_scale':
                continue
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()) or p.numel() == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
            p.copy_(p.half().float())


# --------------------------------------------------------------------------- OVSeg
OVSEG_CONFIGS = dict(swin='ovseg_swinB_vitL_bs32_120k.yaml',
                     r101c='ovseg_R101c_vitB_bs32_120k.yaml')

OVSEG_RELEASED_CLIP = dict(
    r101c=dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
               vision_patch_size=16, context_length=77, vocab_size=49408,
               transformer_width=512, transformer_heads=8, transformer_layers=12),
    swin=dict(embed_dim=768, image_resolution=224, vision_layers=24, vision_width=1024,
              vision_patch_size=14, context_length=77, vocab_size=49408,
              transformer_width=768, transformer_heads=12, transformer_layers=12))
"""The released CLIPs (OpenAI ViT-B/16 and ViT-L/14), as the official
``clip.model.build_model`` infers them from the checkpoints."""


def import_ovseg(repo: str, d2: Optional[str] = None):
    """Imports the clone's modified CLIP (``third_party/CLIP``) and registers the
    official ``OVSeg`` meta-architecture, heads and DeepLab backbone (``wandb``
    stubbed; names another clone registered in this process are taken over).

    Returns:
        tuple: (``clip`` package, ``clip.model`` module).
    """
    clip_dir = osp.join(repo, 'third_party', 'CLIP')
    if not osp.isfile(osp.join(clip_dir, 'clip', 'model.py')):
        raise FileNotFoundError(f'{clip_dir} has no clip/model.py: pass a full clone of '
                                f'facebookresearch/ov-seg (third_party/CLIP included).')
    d2 = detectron2_dir(d2)
    add_source_dirs(repo, clip_dir, d2, osp.join(d2, 'projects', 'DeepLab') if d2 else None)
    stub_module('wandb')
    if 'detectron2.projects.deeplab' in sys.modules and 'deeplab' not in sys.modules:
        # the same files imported under detectron2's alias (e.g. by ZegFormer's code in
        # this process): importing them again would register the backbone twice
        sys.modules['deeplab'] = sys.modules['detectron2.projects.deeplab']
    import clip
    import clip.model as clip_model
    import deeplab  # noqa: F401  registers build_resnet_deeplab_backbone
    from fvcore.common.registry import Registry
    saved = Registry._do_register
    # OVSeg ships its own copies of MaskFormer's modules (D2SwinTransformer, ...): where
    # another clone (ZegFormer's mask_former) registered them in this process, OVSeg's win
    Registry._do_register = lambda self, name, obj: self._obj_map.__setitem__(name, obj)
    try:
        import open_vocab_seg  # noqa: F401  registers OVSeg, D2SwinTransformer, heads
    finally:
        Registry._do_register = saved
    return clip, clip_model


def ovseg_clip_loader(clip_model, spec: dict, head_width: Optional[int] = None):
    """A ``clip.load`` stand-in: a random CLIP of the official class (eval, float32).

    Args:
        clip_model: The clone's ``clip.model`` module.
        spec (dict): ``clip.model.CLIP`` keyword arguments (shapes).
        head_width (int, optional): Width per vision attention head; None keeps
            the official ``width // 64`` (a tiny width would give no head).

    Returns:
        callable: ``load(name, mask_prompt_depth=0, device='cpu', jit=False)``.
    """

    class HeadsViT(clip_model.VisionTransformer):
        def __init__(self, **kwargs):
            kwargs['heads'] = max(kwargs['width'] // head_width, 1)
            super().__init__(**kwargs)

    def load(name, mask_prompt_depth=0, device='cpu', jit=False):
        saved = clip_model.VisionTransformer
        if head_width is not None:
            clip_model.VisionTransformer = HeadsViT
        try:
            model = clip_model.CLIP(mask_prompt_depth=mask_prompt_depth, **spec)
        finally:
            clip_model.VisionTransformer = saved
        return model.float().eval(), None

    return load


def ovseg_cfg(repo: str, backbone: str, sizes: Optional[dict] = None):
    """The detectron2 config of the released OVSeg model of ``backbone`` (``'r101c'``
    or ``'swin'``, :data:`OVSEG_CONFIGS`), frozen, for the CPU.

    Args:
        sizes (dict, optional): Widths put in (the generator's ``TINY``: ``resnet``
            / ``swin``, ``head``, ``mask_former``, ``ensemble_weight``, ``mask_thr``,
            ``mask_prompt_depth``); None keeps the released ones.
    """
    from deeplab import add_deeplab_config
    from detectron2.config import get_cfg
    from open_vocab_seg import add_ovseg_config
    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_ovseg_config(cfg)
    cfg.merge_from_file(osp.join(repo, 'configs', OVSEG_CONFIGS[backbone]))
    if sizes is not None:
        for key, value in sizes['resnet' if backbone == 'r101c' else 'swin'].items():
            setattr(cfg.MODEL.RESNETS if backbone == 'r101c' else cfg.MODEL.SWIN, key, value)
        for key, value in sizes['head'].items():
            setattr(cfg.MODEL.SEM_SEG_HEAD, key, value)
        for key, value in sizes['mask_former'].items():
            setattr(cfg.MODEL.MASK_FORMER, key, value)
        cfg.MODEL.CLIP_ADAPTER.CLIP_ENSEMBLE_WEIGHT = sizes['ensemble_weight']
        cfg.MODEL.CLIP_ADAPTER.MASK_THR = sizes['mask_thr']
        cfg.MODEL.CLIP_ADAPTER.MASK_PROMPT_DEPTH = sizes['mask_prompt_depth']
        cfg.MODEL.CLIP_ADAPTER.MASK_PROMPT_FWD = True
    cfg.MODEL.CLIP_ADAPTER.CLIP_MODEL_NAME = 'tiny' if sizes is not None else 'released'
    cfg.MODEL.WEIGHTS = ''
    cfg.MODEL.DEVICE = 'cpu'
    cfg.freeze()
    return cfg


@torch.no_grad()
def randomise_ovseg(model: torch.nn.Module, seed: int) -> None:
    """Seeded values for the tensors the official init leaves constant (norms, BN
    statistics, mask prompts, GroupNorm), so that every parameter matters; the
    query embeddings 4x larger (sharper query attention: distinct proposals)."""
    gen = torch.Generator().manual_seed(seed + 1)
    for name, t in list(model.state_dict(keep_vars=True).items()):
        if not t.is_floating_point() or t.numel() == 0:
            continue
        flat = t.detach().flatten()
        if not bool((flat == flat[0]).all()) and 'mask_embedding' not in name:
            continue
        noise = torch.randn(t.shape, generator=gen)
        if name.endswith('running_var'):
            new = 0.5 + torch.rand(t.shape, generator=gen)
        elif name.endswith('logit_scale'):
            continue
        elif float(flat[0]) == 1.0:
            new = 1.0 + 0.1 * noise
        else:
            new = 0.1 * noise
        t.data.copy_(new)
    for name, module in model.named_modules():
        if name.endswith('query_embed'):
            module.weight.data.mul_(4.0)

