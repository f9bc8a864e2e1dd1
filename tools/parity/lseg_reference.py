"""Official-parity fixture of LSeg: runs the official code on CPU.

Builds the official ``LSegNet`` of github.com/isl-org/lang-seg
(``modules/models/lseg_net.py``) as ``LSegModule`` builds the released ADE20K
demo model (``lseg_demo.ipynb``: ``backbone='clip_vitl16_384'``, readout
``'project'``, BN fusion blocks, ``arch_option=0``), with tiny widths and a
seeded random init (every parameter and BN statistic drawn anew), runs it on
one random image with the demo's labels and writes a fixture (see
:mod:`mmovss.testing.official_parity`)::

    python tools/parity/lseg_reference.py --official-repo lang-seg --seed 0 \
        --out tests/data/official_parity/lseg/seed0

Stubs (nothing else of the official code is changed):

* ``clip`` (OpenAI's package): ``clip.load('ViT-B/32', device='cuda')``
  returns a tiny random CLIP with OpenAI's layout (open_clip's ``CLIP``,
  QuickGELU, float32 LayerNorms) converted to half precision as ``clip.load``
  does on a GPU (``convert_weights``); text width 8, 1 block, 2 heads, joint
  dim 512 (LSeg hard-codes ``out_c = 512``); image tower 8x8 input, patch 4,
  width 8, 1 block (unused by LSeg, in the checkpoint only).
  ``clip.tokenize`` is open_clip's (the same BPE and 77-token context).
* ``timm.create_model('vit_large_patch16_384')`` returns timm's own
  ``VisionTransformer`` with width 8, 24 blocks (LSeg's hooks 5/11/17/23 kept),
  2 heads, a 32x32 position grid (resized by ``forward_flex``), 10 classes.
* the hard-coded widths of ``_make_vit_b16_backbone`` (``vit_features=1024``,
  reassemble ``[256, 512, 1024, 1024]``) and ``_make_scratch`` are replaced by
  the tiny ones (``TINY``), through wrappers of the two official functions.

The 49408-row token table is zero except for the rows the labels' tokens use
(before the official model runs): the fixture stores those rows
(``input/token_rows``, ``input/token_ids``) instead of the full table, and the
checker puts them back into a zero table of the official shape.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    add_source_dirs,
    seed_everything,
    stub_module,
)

LABELS = ['plant', 'grass', 'cat', 'stone', 'other']  # lseg_demo.ipynb's label_src
TINY = dict(vit_width=8, vit_depth=24, vit_heads=2, vit_grid_size=32, vit_classes=10,
            reassemble=[4, 8, 16, 16], features=8,
            clip_embed=512, clip_text_width=8, clip_text_heads=2, clip_text_layers=1,
            clip_image_size=8, clip_image_patch=4, clip_image_width=8, clip_image_head_width=4,
            clip_image_layers=1)
HOOKS = [5, 11, 17, 23]
TOKEN_KEY = 'net.clip_pretrained.token_embedding.weight'
EMBED_CHANNEL_STRIDE = 16  # pixel embeddings stored for every 16th of the 512 channels


def tiny_clip_model_cfg() -> dict:
    """open_clip model config of the tiny CLIP (also read by the checker)."""
    return dict(
        embed_dim=TINY['clip_embed'],
        vision_cfg=dict(image_size=TINY['clip_image_size'], layers=TINY['clip_image_layers'],
                        width=TINY['clip_image_width'], patch_size=TINY['clip_image_patch'],
                        head_width=TINY['clip_image_head_width']),
        text_cfg=dict(context_length=77, vocab_size=49408, width=TINY['clip_text_width'],
                      heads=TINY['clip_text_heads'], layers=TINY['clip_text_layers']))


def install_stubs(seed: int):
    """``clip`` and ``timm.create_model`` stand-ins (see the module docstring)."""
    import open_clip
    import timm
    from open_clip.model import convert_weights_to_lp

    def load(name, device='cuda', jit=False):
        assert name == 'ViT-B/32', name
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            model = open_clip.CLIP(**tiny_clip_model_cfg(), quick_gelu=True,
                                   cast_dtype=torch.float16).eval()
        convert_weights_to_lp(model, torch.float16)  # clip.load on a CUDA device
        return model, None

    stub_module('clip', load=load, tokenize=open_clip.tokenize)

    def create_model(name, pretrained=False, **kwargs):
        assert name == 'vit_large_patch16_384', name
        from timm.models.vision_transformer import VisionTransformer
        return VisionTransformer(img_size=TINY['vit_grid_size'], patch_size=16,
                                 embed_dim=TINY['vit_width'], depth=TINY['vit_depth'],
                                 num_heads=TINY['vit_heads'], num_classes=TINY['vit_classes'])

    timm.create_model = create_model


def patch_widths():
    """Tiny widths in place of the official hard-coded ViT-L ones."""
    from modules.models import lseg_blocks, lseg_vit
    make_backbone, make_scratch = lseg_vit._make_vit_b16_backbone, lseg_blocks._make_scratch

    def tiny_backbone(model, features=None, hooks=None, vit_features=None, **kwargs):
        assert hooks == HOOKS, hooks
        return make_backbone(model, features=TINY['reassemble'], hooks=hooks,
                             vit_features=TINY['vit_width'], **kwargs)

    def tiny_scratch(in_shape, out_shape, groups=1, expand=False):
        return make_scratch(TINY['reassemble'], out_shape, groups=groups, expand=expand)

    lseg_vit._make_vit_b16_backbone = tiny_backbone
    lseg_blocks._make_scratch = tiny_scratch


@torch.no_grad()
def randomize(net: nn.Module, gen: torch.Generator, used_tokens) -> None:
    """Draws every parameter and BN statistic anew (deterministic order)."""
    for name, p in net.named_parameters():
        shape, dtype = p.shape, p.dtype
        if name.endswith('token_embedding.weight'):
            new = torch.zeros(shape)
            new[used_tokens] = torch.randn(len(used_tokens), shape[1], generator=gen) * 0.5
        elif p.ndim == 1 and ('norm' in name or 'ln_' in name or '.bn' in name) \
                and name.endswith('weight'):
            new = 1 + 0.2 * torch.randn(shape, generator=gen)
        elif p.ndim <= 1:
            new = 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = p[0].numel() if p.ndim > 1 else 1
            if 'ConvTranspose' in type(_module_of(net, name)).__name__:
                fan_in = p.shape[0]
            new = torch.randn(shape, generator=gen) / max(fan_in, 1) ** 0.5
        p.copy_(new.to(dtype))
    for name, b in net.named_buffers():
        if name.endswith('running_mean'):
            b.copy_(0.1 * torch.randn(b.shape, generator=gen))
        elif name.endswith('running_var'):
            b.copy_(0.5 + torch.rand(b.shape, generator=gen))


def _module_of(net: nn.Module, param_name: str) -> nn.Module:
    return net.get_submodule(param_name.rsplit('.', 1)[0])


#: The released widths (``clip_vitl16_384``: timm ViT-L/16, reassemble 256/512/1024/1024,
#: 256 features; ``clip.load('ViT-B/32')``: text width 512, 12 blocks, 8 heads; image tower
#: ViT-B/32, unused by LSeg) for ``build_official(args, labels, size='full')``.
FULL = dict(vit_width=1024, vit_depth=24, vit_heads=16, vit_grid_size=384, vit_classes=1000,
            reassemble=[256, 512, 1024, 1024], features=256,
            clip_embed=512, clip_text_width=512, clip_text_heads=8, clip_text_layers=12,
            clip_image_size=224, clip_image_patch=32, clip_image_width=768,
            clip_image_head_width=64, clip_image_layers=12)


def build_official(args, labels, size='tiny'):
    """The official ``LSegNet`` (as :func:`main` builds it), for side-by-side timing.

    Used by ``tools/analysis_tools/compare_reference_trained.py``: ``size`` 'tiny'
    (:data:`TINY`) or 'full' (:data:`FULL`), ``args.official_repo`` / ``args.seed``.
    The stubs and width patches of :func:`main` stay installed.

    Returns:
        tuple: The net (eval mode), its state dict with ``net.`` keys (the official
        checkpoint's layout) and ``meta`` in the fixture's form (for our model's config).
    """
    global TINY
    import timm
    widths = FULL if size == 'full' else TINY
    saved, TINY = TINY, widths
    create_model = timm.create_model  # our TimmViT builds through it afterwards
    try:
        add_source_dirs(args.official_repo)
        install_stubs(args.seed)
        patch_widths()
        import open_clip
        from modules.models.lseg_net import LSegNet
        net = LSegNet(labels=list(labels), backbone='clip_vitl16_384',
                      features=widths['features'], crop_size=480, arch_option=0,
                      block_depth=0, activation='lrelu')
        net.pretrained.model.patch_embed.img_size = (480, 480)
        used = sorted(set(open_clip.tokenize(list(labels)).flatten().tolist()))
        randomize(net, torch.Generator().manual_seed(args.seed), used)
        clip_cfg = tiny_clip_model_cfg()
    finally:
        TINY = saved
        timm.create_model = create_model
    net.eval()
    meta = dict(labels=list(labels), tiny=widths, hooks=HOOKS, clip_model_cfg=clip_cfg,
                quick_gelu=True, official=dict(arch_option=0, block_depth=0))
    state = {f'net.{k}': v for k, v in net.state_dict().items()}
    return net, state, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True,
                        help='clone of github.com/isl-org/lang-seg')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--image-size', type=int, nargs=2, default=(32, 64),
                        metavar=('H', 'W'), help='multiples of 32 (LSeg fuses 1/32 to 1/4)')
    parser.add_argument('--arch-option', type=int, default=0, choices=(0, 1, 2),
                        help='0: released model; 1/2: bottleneck / depthwise head blocks')
    parser.add_argument('--block-depth', type=int, default=0)
    args = parser.parse_args(argv)
    h, w = args.image_size
    if h % 32 or w % 32:
        parser.error('--image-size: H and W must be multiples of 32')
    if not osp.isfile(osp.join(args.official_repo, 'modules', 'models', 'lseg_net.py')):
        parser.error(f'{args.official_repo!r} has no modules/models/lseg_net.py: pass a clone of '
                     f'github.com/isl-org/lang-seg')
    add_source_dirs(args.official_repo)
    seed_everything(args.seed)
    install_stubs(args.seed)
    patch_widths()
    import open_clip
    import torchvision.transforms as transforms
    from modules.models.lseg_net import LSegNet

    # as LSegModule.__init__ (modules/lseg_module.py) builds the net
    net = LSegNet(labels=LABELS, backbone='clip_vitl16_384', features=TINY['features'],
                  crop_size=480, arch_option=args.arch_option, block_depth=args.block_depth,
                  activation='lrelu')
    net.pretrained.model.patch_embed.img_size = (480, 480)
    tokens = open_clip.tokenize(LABELS)
    used = sorted(set(tokens.flatten().tolist()))
    gen = torch.Generator().manual_seed(args.seed)
    randomize(net, gen, used)
    net.eval()

    rng = np.random.RandomState(args.seed)
    image = rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
    # LSegModule.val_transform
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize([0.5] * 3, [0.5] * 3)])
    x = transform(image).unsqueeze(0)

    stages, pre = {}, {}
    handles = []

    def keep(name):
        def hook(_m, _i, out):
            stages[name] = out.detach().float().clone()
        return hook

    def keep_input(name):
        def hook(_m, inputs):
            pre[name] = inputs[0].detach().float().clone()
        return hook

    model = net.pretrained.model
    for i, block in enumerate(HOOKS):
        handles.append(model.blocks[block].register_forward_hook(keep(f'vit/block{block}')))
        post = getattr(net.pretrained, f'act_postprocess{i + 1}')
        handles.append(post[0].register_forward_hook(keep(f'readout/{i + 1}')))
        rn = getattr(net.scratch, f'layer{i + 1}_rn')
        handles.append(rn.register_forward_pre_hook(keep_input(f'reassemble/{i + 1}')))
        handles.append(rn.register_forward_hook(keep(f'rn/{i + 1}')))
    for k in (4, 3, 2, 1):
        handles.append(getattr(net.scratch, f'refinenet{k}').register_forward_hook(
            keep(f'refinenet/{k}')))
    handles.append(net.scratch.head1.register_forward_hook(keep('pixel_embeddings')))
    text_out = []
    encode_text = net.clip_pretrained.encode_text

    def recording_encode_text(text):
        out = encode_text(text)
        text_out.append(out)
        return out

    net.clip_pretrained.encode_text = recording_encode_text
    with torch.no_grad():
        logits = net(x, LABELS)
    for hdl in handles:
        hdl.remove()
    text = text_out[0]
    text = text / text.norm(dim=-1, keepdim=True)  # as LSeg.forward, in half precision
    stages.update(pre)
    stages['pixel_embeddings'] = stages['pixel_embeddings'][:, ::EMBED_CHANNEL_STRIDE]
    stages['text_embeddings'] = text.float()
    stages['normalized_image'] = x
    stages['logits'] = logits.float()
    stages['labels'] = logits.argmax(dim=1)
    assert logits.shape == (1, len(LABELS), h, w), logits.shape

    state = {f'net.{k}': v for k, v in net.state_dict().items()}
    table = state.pop(TOKEN_KEY)
    assert not table[[i for i in range(table.shape[0]) if i not in set(used)]].any()
    inputs = dict(image=image, token_ids=np.asarray(used, dtype=np.int64),
                  token_rows=table[used].float().numpy(),
                  token_table_shape=np.asarray(table.shape, dtype=np.int64))
    try:
        commit = subprocess.run(['git', '-C', args.official_repo, 'rev-parse', 'HEAD'],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = 'unknown (not a git clone)'
    meta = dict(
        method='lseg', seed=args.seed, image_size=[h, w], labels=LABELS, tiny=TINY,
        hooks=HOOKS, clip_model_cfg=tiny_clip_model_cfg(), quick_gelu=True,
        official=dict(repo='github.com/isl-org/lang-seg', commit=commit,
                      backbone='clip_vitl16_384', readout='project', use_bn=True,
                      arch_option=args.arch_option, block_depth=args.block_depth,
                      activation='lrelu', norm_mean=[0.5] * 3, norm_std=[0.5] * 3,
                      logit_scale=float(net.logit_scale.detach()), text_dtype=str(text.dtype)),
        token_table=dict(key=TOKEN_KEY, note='zero except input/token_ids rows'),
        pixel_embeddings_channel_stride=EMBED_CHANNEL_STRIDE,
        tolerances=dict(default=1e-4, labels=0.999),
        command=' '.join(['python', 'tools/parity/lseg_reference.py'] + list(
            argv if argv is not None else sys.argv[1:])))
    write_fixture(args.out, meta, state, inputs,
                  {k: v.numpy() for k, v in stages.items()})
    print(json.dumps({k: list(v.shape) for k, v in stages.items()}, indent=None))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
