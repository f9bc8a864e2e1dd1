"""mmovss's training-free segmentors next to their published code.

For ``tools/analysis_tools/compare_reference_training_free.py``: our
:class:`~mmovss.models.segmentors.TrainingFreeSegmentor` and the published
implementation of the same method (NACLIP, Hajimiri et al., WACV 2025:
github.com/sinahmr/NACLIP; SCLIP, Wang et al., ECCV 2024:
github.com/wangf3014/SCLIP; ResCLIP, Yang et al., CVPR 2025:
github.com/yvhangyang/ResCLIP; SC-CLIP: github.com/SuleBai/SC-CLIP),
built at the published protocol with the same CLIP weights and class-name
file. Nothing of the reference code is shipped with mmovss: the caller
passes the directory of a clone.
"""
import contextlib
import copy
import functools
import importlib
import os
import os.path as osp
import statistics
import sys
from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from .options import parse_key_values
from .timing import timed_call

METHODS = {
    'naclip': dict(
        module='naclip', cls='NACLIP',
        config='naclip/naclip_vit-b16_pascal_context_60.py',
        pamr_config='naclip/naclip-pamr_vit-b16_pascal_context_60.py',
        class_file='configs/cls_context60.txt',
        kwargs=dict(prob_thd=0.1, logit_scale=40, arch='reduced',
                    attn_strategy='naclip', gaussian_std=5.0)),
    'sclip': dict(
        module='clip_segmentor', cls='CLIPForSegmentation',
        config='sclip/sclip_vit-b16_voc21.py',
        pamr_config=None,
        class_file='configs/cls_voc21.txt',
        kwargs=dict(prob_thd=0.1, logit_scale=65, area_thd=0.1)),
    # ResCLIP (Yang et al., CVPR 2025; github.com/yvhangyang/ResCLIP
    # configs/cfg_context60.py on base_config.py): NACLIP's slide code
    'resclip': dict(
        module='resclip_segmentor', cls='ResCLIPSegmentation',
        config='resclip/resclip_vit-b16_pascal_context_60.py',
        pamr_config=None,
        class_file='configs/cls_context60.txt',
        kwargs=dict(prob_thd=0.1, temp_thd=0.3, delete_same_entity=True,
                    attn_rcs_weights=[2.0, 0.3], attn_sfr_weights=[1.8, 0.7],
                    use_rcs=True, use_sfr=True),
        cpu_only=True),
    # SC-CLIP (Bai et al.; github.com/SuleBai/SC-CLIP configs/cfg_voc21.py
    # on base_config.py): SCLIP's slide code
    'scclip': dict(
        module='scclip_segmentor', cls='SCCLIPForSegmentation',
        config='scclip/scclip_vit-b16_voc21.py',
        pamr_config=None,
        class_file='configs/cls_voc21.txt',
        kwargs=dict(prob_thd=0.15, logit_scale=50, area_thd=0.1,
                    pre_adjust_idx=8, post_adjust_idx=3, multi_start_idx=3,
                    multi_end_idx=10, res_cls=0.3)),
}
"""Method -> the reference's module and class, its protocol (``kwargs``,
``class_file`` inside the reference repository) and our configs (under
``configs/``)."""


def make_random_openai_weights(path: str, seed: int) -> None:
    """A random CLIP ViT-B/16 in OpenAI's state-dict format (float16).

    open_clip ``ViT-B-16`` with QuickGELU, random LayerNorm affine and
    attention biases (so that every parameter matters), rounded to float16
    as OpenAI ships its files, so that both codes read identical float32
    values.
    """
    import open_clip
    torch.manual_seed(seed)
    model = open_clip.create_model('ViT-B-16', pretrained=None,
                                   force_quick_gelu=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if '.ln_' in name or name.startswith('ln_') or 'ln_final' in name:
                if name.endswith('weight'):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                else:
                    p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith('in_proj_bias'):
                p.copy_(0.05 * torch.randn_like(p))
            elif name.endswith('out_proj.bias'):
                p.copy_(0.02 * torch.randn_like(p))
    state = {k: v.detach().half() for k, v in model.state_dict().items()}
    state['input_resolution'] = torch.tensor(224)
    state['context_length'] = torch.tensor(77)
    state['vocab_size'] = torch.tensor(49408)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    torch.save(state, path)


def _method(name: str) -> dict:
    if name not in METHODS:
        raise ValueError(f'Unknown method {name!r}: use one of '
                         f'{sorted(METHODS)}.')
    return METHODS[name]


def our_config(method: str, reference: str, weights: str,
               templates: str = 'imagenet', pamr: bool = False,
               cfg_options: Optional[Sequence[str]] = None):
    """Our config of ``method`` with the reference's weights and classes.

    Args:
        method: ``'naclip'`` or ``'sclip'``.
        reference: Directory of the reference repository (its class file).
        weights: OpenAI-format CLIP state dict (image and text towers).
        templates: Our text templates.
        pamr: NACLIP with PAMR.
        cfg_options: Extra ``key=value`` overrides; values are parsed as
            literals (:func:`~.options.parse_literal`), never evaluated.

    Returns:
        Config: The config to build.
    """
    from mmovss.apis.model_zoo import configs_root

    from mmengine.config import Config
    info = _method(method)
    if pamr and not info['pamr_config']:
        raise ValueError(f'--pamr: {method} runs without PAMR.')
    config = info['pamr_config'] if pamr else info['config']
    cfg = Config.fromfile(osp.join(configs_root(), config))
    options = {
        'model.backbone.pretrained': weights,
        'model.text_encoder.pretrained': weights,
        'model.text_encoder.templates': templates,
        'model.vocabulary': osp.join(reference, info['class_file']),
    }
    options.update(parse_key_values(cfg_options or ()))
    cfg.merge_from_dict(options)
    return cfg


def build_ours(cfg):
    """Our segmentor of :func:`our_config`, in eval mode."""
    import mmovss  # noqa: F401

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(cfg.model).eval()


@contextlib.contextmanager
def cpu_only() -> Iterator[None]:
    """``.cuda()`` and ``Module.to(<cuda device>)`` keep CPU tensors/modules.

    For reference codes that move tensors to the GPU unconditionally
    (ResCLIP's ``clip/model.py``: ``.cuda()`` on its SFR temporaries and
    ``PAMR(...).to(torch.device('cuda'))`` in ``create_logit_temp``).
    """
    saved = torch.Tensor.cuda, torch.nn.Module.cuda, torch.nn.Module.to

    def is_cuda(value):
        return isinstance(value, (str, torch.device)) and \
            str(value).startswith('cuda')

    def module_to(self, *args, **kwargs):
        args = tuple(a for a in args if not is_cuda(a))
        if is_cuda(kwargs.get('device')):
            kwargs.pop('device')
        return saved[2](self, *args, **kwargs) if args or kwargs else self

    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.nn.Module.to = module_to
    try:
        yield
    finally:
        torch.Tensor.cuda, torch.nn.Module.cuda, torch.nn.Module.to = saved


def _on_cpu(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with cpu_only():
            return fn(*args, **kwargs)
    return wrapper


def build_reference(method: str, reference: str, weights: str,
                    pamr: bool = False):
    """The published model of ``method`` (imported from ``reference``).

    Built with one prompt template, to skip its several-minute text loop:
    the caller replaces its ``query_features`` with ours.
    """
    info = _method(method)
    sys.path.insert(0, osp.abspath(reference))
    cwd = os.getcwd()
    os.chdir(reference)  # relative class-file paths, as in their eval
    try:
        module = importlib.import_module(info['module'])
        # one template while constructing: their text loop is replaced
        module.openai_imagenet_template = [lambda c: f'a photo of a {c}.']
        kwargs = dict(info['kwargs'])
        if info['module'] == 'naclip':
            kwargs['pamr_steps'] = 10 if pamr else 0
        model = getattr(module, info['cls'])(
            clip_path=osp.abspath(weights),
            name_path=info['class_file'], device=torch.device('cpu'),
            slide_stride=112, slide_crop=224, **kwargs)
    finally:
        os.chdir(cwd)
    if info.get('cpu_only'):  # its forward moves temporaries to 'cuda'
        model.predict = _on_cpu(model.predict)
        model.forward_slide = _on_cpu(model.forward_slide)
    return model.eval()


def reference_text(ref, names, templates) -> torch.Tensor:
    """The reference code's template ensemble for ``names``."""
    clip = sys.modules['clip']
    rows = []
    with torch.no_grad():
        for name in names:
            tokens = clip.tokenize([t.format(name) for t in templates])
            feats = ref.net.encode_text(tokens)
            feats = feats / feats.norm(dim=-1, keepdim=True)
            feats = feats.mean(dim=0)
            rows.append(feats / feats.norm())
    return torch.stack(rows)


def load_image(model, cfg, path: str):
    """An image file through our test pipeline and data preprocessor.

    Returns:
        tuple: The batched inputs (1, 3, H, W) and the data samples.
    """
    from mmengine.dataset import Compose
    pipeline = Compose([dict(t) for t in cfg.test_pipeline
                        if 'Annotation' not in t['type']])
    sample = pipeline(dict(img_path=path))
    batch = model.data_preprocessor(
        dict(inputs=[sample['inputs']],
             data_samples=[sample['data_samples']]), False)
    return batch['inputs'], batch['data_samples']


def compare_on_image(method: str, ours, ref, inputs, samples,
                     repeats: int = 1, first: int = 0) -> dict:
    """Times both models on one image, alternately, and compares them.

    In every repeat both models run ``predict`` once (sliding windows,
    resizing and post-processing), in an order that alternates with
    ``first + repeat``, so that load from other processes hits both alike.
    Then, untimed, the window-averaged slide logits (NACLIP: at the resized
    input size; SCLIP: after its resize to the original size, ours resized
    the same way) and the final labels are compared.

    Args:
        method: ``'naclip'`` or ``'sclip'``.
        ours: Our segmentor (:func:`build_ours`).
        ref: The reference model (:func:`build_reference`), its
            ``query_features`` set to our text embeddings.
        inputs, samples: :func:`load_image` of the image.
        repeats: Timed runs of each model.
        first: Offset of the order (the image index).

    Returns:
        dict: ``input``, ``windows``, median seconds ``ours`` / ``ref``,
        median CPU seconds ``ours_cpu`` / ``ref_cpu``, ``logit_diff``
        (max abs) and ``agree`` (fraction of equal labels).
    """
    _method(method)
    metas = [s.metainfo for s in samples]
    models = {'ours': ours, 'ref': ref}
    times = {'ours': [], 'ref': []}
    cpu = {'ours': [], 'ref': []}
    outs = {}
    with torch.no_grad():
        for r in range(repeats):
            order = ('ours', 'ref') if (first + r) % 2 == 0 else \
                ('ref', 'ours')
            for who in order:
                model = models[who]
                t, c, out = timed_call(lambda: model.predict(
                    inputs, copy.deepcopy(samples)))
                times[who].append(t)
                cpu[who].append(c)
                outs[who] = out[0].pred_sem_seg.data[0]
        agree = (outs['ours'] == outs['ref']).float().mean().item()
        sims = ours.slide_inference(inputs, metas)
        if method in ('naclip', 'resclip'):  # logits at the input size
            ref_sims = ref.forward_slide(inputs, 112, 224)
        else:
            ref_sims = ref.forward_slide(inputs, metas, 112, 224)
            sims = F.interpolate(sims, size=ref_sims.shape[-2:],
                                 mode='bilinear', align_corners=False)
        diff = (sims - ref_sims).abs().max().item()
    windows = len(ours.crop_boxes(inputs.shape[2:], (224, 224), (112, 112)))
    return dict(size=tuple(metas[0]['ori_shape'][:2]),
                input=tuple(inputs.shape[2:]), windows=windows,
                ours=statistics.median(times['ours']),
                ref=statistics.median(times['ref']),
                ours_cpu=statistics.median(cpu['ours']),
                ref_cpu=statistics.median(cpu['ref']),
                logit_diff=diff, agree=agree)
