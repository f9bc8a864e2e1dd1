"""Low-precision inference with weights cast once (``inference_dtype``).

:mod:`.mixed_precision` runs float32 towers under :func:`torch.autocast`,
which casts every weight and activation at every matrix product. Here the
towers *are* low precision: their weights are cast once to bfloat16 (or
float16 on CUDA) and the residual stream stays in that dtype, as the
published CLIP code runs its fp16 model (Radford et al., "Learning
Transferable Visual Models From Natural Language Supervision", ICML 2021,
``clip/model.py: convert_weights``), with these exceptions kept in float32
where precision needs it (Micikevicius et al., "Mixed Precision Training",
ICLR 2018, Sec. 3.2: reductions in float32):

* normalisation layers (``LayerNorm``, ``GroupNorm``, ``BatchNorm`` and
  detectron2's ``FrozenBatchNorm2d``) keep float32 parameters; on CPU
  PyTorch's mixed-type kernels (``LayerNorm``, ``GroupNorm``, batch norm
  with running statistics) normalise a low-precision input with float32
  statistics, elsewhere the input is normalised in float32 and cast back
  (open_clip's ``LayerNormFp32``);
* the patch embedding of the image tower (open_clip's ``conv1``): the
  normalised pixels are not rounded to 8 bits of mantissa (about 1.4% of a
  ViT-B/16's FLOPs); its output joins the low-precision stream. In a
  convolutional image tower (``cast_tower(..., takes_pixels=True)``: a
  ResNet) its first convolution plays that part: float32 input and weights,
  output cast to the low precision;
* convolutional image towers with batch norms (ResNets) are also put in
  ``channels_last`` memory format with their inputs: oneDNN's bf16
  convolutions reorder a contiguous (NCHW) input at every layer (ResNet-101
  at 640 x 864, one thread: 1.60 CPU s NCHW vs 0.36 s channels-last, against
  1.68 s under autocast; docs/benchmarks.md);
* the final projections into the joint space (the image tower's ``proj``,
  the text tower's ``text_projection``) and the norms before them
  (``ln_post``, ``ln_final``, whose outputs are returned in float32), so
  the dense embeddings, the text embeddings, their normalisation and the
  pixel-text logits are float32;
* attention softmaxes: SDPA kernels accumulate in float32; the explicit
  softmaxes are taken with ``dtype=torch.float32``.

Before the cast, QuickGELU MLPs get QuickGELU's constant folded into their
float32 weights (:func:`fold_quick_gelu`): one SiLU pass per activation
instead of three.

:func:`prepare_low_precision` casts a segmentor's towers on its first
low-precision forward; on a CPU whose bfloat16 matrix products are slower
than float32 ones (no AMX / AVX512-BF16), it keeps float32 and says so
(:func:`cpu_bf16_check`, the benchmark tool's check).
"""
import functools
import types
import warnings
from typing import Dict, Iterable, List, Optional

import torch
import torch.nn as nn

from .mixed_precision import INFERENCE_DTYPES, check_inference_dtype

__all__ = [
    'FLOAT32_MODULES', 'FLOAT32_PARAMETERS', 'FLOAT32_OUTPUT_NORMS', 'low_precision_dtype',
    'cast_tower', 'cpu_bf16_check', 'fold_quick_gelu', 'pixel_convolution',
    'prepare_low_precision', 'tower_dtype'
]

#: Parameters (by their own name) kept in float32: the final projections.
FLOAT32_PARAMETERS = ('proj', 'text_projection')
#: Modules (by their attribute name) kept in float32: the patch embedding of
#: an open_clip ViT (a child of the module holding ``class_embedding``; a
#: ResNet bottleneck's ``conv1`` is not one).
FLOAT32_MODULES = ('conv1', )
#: Norm modules (by their attribute name) whose output is made float32: the
#: norms before the final projections.
FLOAT32_OUTPUT_NORMS = ('ln_post', 'ln_final')
_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)
#: Norms whose CPU kernels take a low-precision input with float32 parameters
#: and compute the statistics in float32 (GroupNorm: equal to normalising a
#: float32 copy and rounding, on 99.999% of the elements of a 256 x 160 x 216
#: map, one bf16 step elsewhere; 7x faster than the copy). Batch norms in
#: inference (running statistics) too: equal to the rounded float32 copy on
#: every element of a 256 x 160 x 216 map, 4x faster (:func:`_cpu_mixed_type`).
_CPU_MIXED_TYPE_NORMS = (nn.LayerNorm, nn.GroupNorm)


@functools.lru_cache(maxsize=None)
def _batch_norms() -> tuple:
    """Batch norms: torch's and detectron2's frozen one as our D2ResNet
    builds it (:class:`~mmovss.models.backbones.d2_resnet.FrozenBatchNorm2d`:
    fixed statistics through ``F.batch_norm``), imported here (once) to keep
    the backbones' import of this module acyclic."""
    from ..backbones.d2_resnet import FrozenBatchNorm2d
    return (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)


def _norm_types() -> tuple:
    """Norm layers kept float32: torch's and the frozen batch norm."""
    return _NORMS + _batch_norms()


def _cpu_mixed_type(norm: nn.Module) -> bool:
    """Whether a norm's CPU kernel takes a low-precision input as it is
    (called at every norm forward of a cast tower: LayerNorm first)."""
    if isinstance(norm, _CPU_MIXED_TYPE_NORMS):
        return True
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return not norm.training and norm.running_mean is not None
    return isinstance(norm, _batch_norms())  # the frozen one: running statistics


#: Result of :func:`cpu_bf16_check` per thread count (measured once).
_CPU_CHECKS: Dict[int, dict] = {}


def low_precision_dtype(name: Optional[str],
                        device_type: str) -> Optional[torch.dtype]:
    """The dtype of ``inference_dtype`` on a device type (None: float32).

    Raises:
        ValueError: Unknown name, or ``'fp16'`` on a device other than CUDA
            (CPU float16 matrix products have no fast kernels; PyTorch's CPU
            autocast computes in bfloat16).
    """
    name = check_inference_dtype(name)
    dtype = INFERENCE_DTYPES[name]
    if dtype == torch.float16 and device_type != 'cuda':
        raise ValueError(
            f"test_cfg.inference_dtype='fp16' needs a CUDA device (the model "
            f"is on {device_type!r}); set model.test_cfg.inference_dtype="
            f"'bf16' (--dtype bf16) or 'fp32' on the CPU.")
    return dtype


def _float32_norm_forward(self, x):
    """A norm's forward in float32 statistics, output in the input's dtype.

    The module's float32 parameters are used as they are; a low-precision
    input goes through PyTorch's mixed-type kernel on CPU (LayerNorm,
    GroupNorm, batch norms in inference: :func:`_cpu_mixed_type`), through a
    float32 copy elsewhere (as open_clip's ``LayerNormFp32``).
    """
    if x.dtype == torch.float32 or x.device.type == 'cpu' and _cpu_mixed_type(self):
        return type(self).forward(self, x)
    return type(self).forward(self, x.float()).to(x.dtype)


def _float32_output(module, args, output):
    return output.float() if torch.is_tensor(output) else output


def _float32_input(module, args):
    """Casts a kept float32 module's low-precision inputs to float32."""
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point()
                 else a for a in args)


def _channels_last_input(module, args):
    """Puts a channels-last tower's 4-d inputs in channels-last format."""
    return tuple(a.contiguous(memory_format=torch.channels_last)
                 if torch.is_tensor(a) and a.dim() == 4 else a for a in args)


def _output_to(dtype: torch.dtype):
    """A forward hook casting a floating output to ``dtype``."""
    def hook(module, args, output):
        return output.to(dtype) if torch.is_tensor(output) and \
            output.is_floating_point() else output
    return hook


def _is_patch_embedding(tower: nn.Module, module_name: str) -> bool:
    """A :data:`FLOAT32_MODULES` module of an open_clip ViT (its parent
    holds ``class_embedding``)."""
    parent, _, attr = module_name.rpartition('.')
    if attr not in FLOAT32_MODULES:
        return False
    return hasattr(tower.get_submodule(parent) if parent else tower,
                   'class_embedding')


def pixel_convolution(tower: nn.Module) -> Optional[str]:
    """The name of an image tower's first convolution (None: none), the
    one that takes the normalised pixels (a ResNet's stem convolution)."""
    for name, module in tower.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    return None


def fold_quick_gelu(tower: nn.Module) -> int:
    """Folds QuickGELU's constant into the MLP weights, in place (float32).

    ``c_proj(h * sigmoid(1.702 h))`` with ``h = c_fc(x)`` equals
    ``c_proj'(silu(c_fc'(x)))`` with ``c_fc`` scaled by 1.702 and
    ``c_proj``'s weight by 1 / 1.702 (``silu(z) = z sigmoid(z)``;
    :func:`~.clip_attention.clip_mlp` does the same per call on float32
    weights). Done once on the float32 weights before they are cast, so the
    scaled weights are rounded once, the activation becomes one SiLU pass
    instead of QuickGELU's three. open_clip MLPs (``c_fc``, ``gelu``,
    ``c_proj``) with float32 weights and without forward hooks only.

    Args:
        tower (nn.Module): A tower about to be cast.

    Returns:
        int: MLPs folded.
    """
    from .clip_attention import QUICK_GELU_SCALE, _has_hooks, foldable_quick_gelu_mlp
    folded = 0
    for mlp in list(tower.modules()):
        if not foldable_quick_gelu_mlp(mlp):
            continue
        fc, proj = mlp.c_fc, mlp.c_proj
        if fc.weight.dtype != torch.float32 or _has_hooks(mlp, fc, mlp.gelu, proj):
            continue
        with torch.no_grad():
            fc.weight.mul_(QUICK_GELU_SCALE)
            if fc.bias is not None:
                fc.bias.mul_(QUICK_GELU_SCALE)
            proj.weight.div_(QUICK_GELU_SCALE)
        mlp.gelu = nn.SiLU()
        folded += 1
    return folded


def cast_tower(tower: nn.Module, dtype: torch.dtype, takes_pixels: bool = False) -> dict:
    """Casts a tower's weights to ``dtype`` once, in place.

    Every floating parameter and buffer is cast, except those of norm
    layers, :data:`FLOAT32_MODULES` (an open_clip ViT's patch embedding) and
    :data:`FLOAT32_PARAMETERS` (kept float32); the norms named in
    :data:`FLOAT32_OUTPUT_NORMS` return float32. A tower (e.g. a decode head)
    can name more in its own ``float32_modules`` (submodule attribute names:
    kept float32, their inputs cast to float32, so their outputs are
    float32) and ``float32_parameters`` (parameter paths, e.g. a logit
    scale). QuickGELU MLPs are folded into SiLU ones first
    (:func:`fold_quick_gelu`). Idempotent.

    Args:
        tower (nn.Module): An image or text tower (or a whole segmentor
            part, e.g. ``model.backbone``).
        dtype (torch.dtype): ``torch.bfloat16`` or ``torch.float16``.
        takes_pixels (bool): The tower takes the normalised image (a
            segmentor's backbone): its first convolution
            (:func:`pixel_convolution`), unless kept already, stays float32
            on a float32 input and its output is cast to ``dtype`` (a
            ResNet's stem convolution, as the ViT's patch embedding); a tower
            with batch norms (a ResNet) is also put in ``channels_last``
            memory format, its 4-d inputs too.

    Returns:
        dict: ``cast`` and ``kept`` (numbers of parameters), ``kept_names``,
        ``folded`` (QuickGELU MLPs folded), ``channels_last``.
    """
    folded = fold_quick_gelu(tower)
    cast, kept_names = 0, []
    norms = _norm_types()
    own_modules = tuple(getattr(tower, 'float32_modules', ()))
    own_parameters = tuple(getattr(tower, 'float32_parameters', ()))
    pixel_conv = pixel_convolution(tower) if takes_pixels else None
    kept_trees = []  # the tower's own float32 modules, with their children
    for module_name, module in tower.named_modules():
        norm = isinstance(module, norms)
        attr = module_name.split('.')[-1]
        own = attr in own_modules and module_name != ''
        inside = any(module_name.startswith(t + '.') for t in kept_trees)
        if own and not inside:
            kept_trees.append(module_name)
        patch_embedding = _is_patch_embedding(tower, module_name)
        pixels = module_name == pixel_conv and not (patch_embedding or own or inside)
        if pixels:  # its children (a detectron2 conv's norm) are kept too
            kept_trees.append(module_name)
        keep = norm or patch_embedding or own or inside or pixels
        if not getattr(module, '_mmovss_low_precision', False):
            if norm:
                module.forward = types.MethodType(_float32_norm_forward, module)
                if attr in FLOAT32_OUTPUT_NORMS:
                    module.register_forward_hook(_float32_output)
            elif (own or pixels) and not inside:
                module.register_forward_pre_hook(_float32_input)
            if pixels:
                module.register_forward_hook(_output_to(dtype))
            module._mmovss_low_precision = True
        for name, param in module.named_parameters(recurse=False):
            if not param.is_floating_point():
                continue
            full_name = f'{module_name}.{name}'.lstrip('.')
            if keep or name in FLOAT32_PARAMETERS or full_name in own_parameters:
                param.data = param.data.float()
                kept_names.append(full_name)
            else:
                param.data = param.data.to(dtype)
                cast += 1
        if not keep:
            for name, buf in list(module.named_buffers(recurse=False)):
                if buf is not None and buf.is_floating_point():
                    setattr(module, name, buf.to(dtype))
    channels_last = takes_pixels and any(isinstance(m, _batch_norms())
                                         for m in tower.modules())
    if channels_last and not getattr(tower, '_mmovss_channels_last', False):
        tower.to(memory_format=torch.channels_last)
        tower.register_forward_pre_hook(_channels_last_input)
        tower._mmovss_channels_last = True
    return dict(cast=cast, kept=len(kept_names), kept_names=kept_names,
                folded=folded, channels_last=channels_last)


def tower_dtype(tower: nn.Module) -> Optional[torch.dtype]:
    """The dtype of a tower's matrix weights (``nn.Linear``), or None."""
    for module in tower.modules():
        if isinstance(module, nn.Linear):
            return module.weight.dtype
    return None


def cpu_bf16_check(measure=None, refresh: bool = False) -> dict:
    """Whether bfloat16 matrix products beat float32 ones on this CPU.

    The benchmark tool's check (:func:`mmovss.benchmarking.peak.
    matmul_peaks` of :data:`~mmovss.benchmarking.peak.DEFAULT_SHAPE`, bf16
    and fp32 interleaved, best of rounds), measured once per process and
    thread count.

    Args:
        measure (callable, optional): ``() -> (bf16_gflops, fp32_gflops)``
            instead of the measurement (tests).
        refresh (bool): Measure again (and keep the new result), as the
            benchmark tool does once per run.

    Returns:
        dict: ``bf16_gflops``, ``fp32_gflops``, ``shape``, ``kept`` (False:
        bf16 is slower, run float32) and ``message``.
    """
    from mmovss.benchmarking.peak import (
        DEFAULT_SHAPE,
        bf16_falls_back,
        bf16_message,
        matmul_peaks,
    )
    threads = torch.get_num_threads()
    if measure is None and not refresh and threads in _CPU_CHECKS:
        return _CPU_CHECKS[threads]
    if measure is None:
        peaks = matmul_peaks(DEFAULT_SHAPE, ('bf16', 'fp32'), 'cpu')
        bf16, fp32 = peaks['bf16']['gflops'], peaks['fp32']['gflops']
    else:
        bf16, fp32 = measure()
    kept = not bf16_falls_back(bf16, fp32)
    result = dict(shape=list(DEFAULT_SHAPE), bf16_gflops=bf16,
                  fp32_gflops=fp32, kept=kept,
                  message=None if kept else bf16_message(bf16, fp32,
                                                          DEFAULT_SHAPE))
    if measure is None:
        _CPU_CHECKS[threads] = result
    return result


def prepare_low_precision(model: nn.Module, towers: Iterable[nn.Module],
                          name: Optional[str], device_type: str) -> str:
    """Puts a segmentor's towers in the precision of ``inference_dtype``.

    Called before each inference forward; casts at most once. The state is
    kept on the model (``model._low_precision``).

    Args:
        model (nn.Module): The segmentor (holds the state).
        towers (Iterable[nn.Module]): Its image and text towers; the
            model's ``backbone`` among them takes the pixels
            (``cast_tower(..., takes_pixels=True)``).
        name (str, optional): ``test_cfg.inference_dtype``.
        device_type (str): The towers' device type.

    Returns:
        str: The precision run: ``'fp32'``, ``'bf16'`` or ``'fp16'``.

    Raises:
        ValueError: ``'fp16'`` off CUDA; float32 requested after the towers
            were cast (the cast is not undone: rebuild the model).
    """
    name = check_inference_dtype(name)
    state = getattr(model, '_low_precision', None)
    if state is not None and state['requested'] == name and \
            state['device_type'] == device_type:
        return state['run']
    dtype = low_precision_dtype(name, device_type)
    notes: List[str] = []
    if dtype == torch.bfloat16 and device_type == 'cpu':
        check = cpu_bf16_check()
        if not check['kept']:
            notes.append(f"test_cfg.inference_dtype='bf16': "
                         f"{check['message']}; running float32 instead")
            warnings.warn(notes[-1])
            dtype = None
    towers = [t for t in towers if t is not None]
    cast_to = state['dtype'] if state is not None else None
    if cast_to is not None and dtype != cast_to:
        raise ValueError(
            f"test_cfg.inference_dtype={name!r}, but the towers were cast to "
            f"{cast_to} by an earlier low-precision run and the cast is not "
            f"undone; rebuild the model (or load its checkpoint again) to run "
            f"in {name}.")
    if dtype is not None and cast_to is None:
        backbone = getattr(model, 'backbone', None)
        for tower in towers:
            cast_tower(tower, dtype, takes_pixels=tower is backbone)
    run = {None: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16'}[dtype]
    model._low_precision = dict(requested=name, device_type=device_type,
                                dtype=dtype, run=run, notes=notes)
    return run
