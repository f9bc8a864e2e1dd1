"""Mixed-precision inference: ``test_cfg.inference_dtype``.

The image and text towers of an open-vocabulary segmentor run under
:func:`torch.autocast` with the chosen dtype (Micikevicius et al., "Mixed
Precision Training", ICLR 2018: low-precision matrix products, float32 where
accuracy needs it). mmovss keeps in float32

* the residual stream of the CLIP transformers, hence every LayerNorm input
  and output (the patch embedding is cast back to the parameters' dtype);
* softmax accumulation: SDPA kernels accumulate in float32, the explicit
  softmaxes are taken with ``dtype=torch.float32``;
* the final ``ln_post`` + projection into the joint space, the pixel-text
  matching and everything after it: heads run outside autocast on float32
  features, so logits are float32.

``'fp16'`` needs a CUDA device; CPUs run ``'bf16'``.
"""
import contextlib
from typing import Any, ContextManager, Optional

import torch

__all__ = [
    'INFERENCE_DTYPES', 'check_inference_dtype', 'inference_autocast',
    'float32_region', 'to_dtype', 'to_float32'
]

#: ``test_cfg.inference_dtype`` values and their autocast dtype (None: off).
INFERENCE_DTYPES = {
    'fp32': None,
    'float32': None,
    'bf16': torch.bfloat16,
    'bfloat16': torch.bfloat16,
    'fp16': torch.float16,
    'float16': torch.float16,
}


def check_inference_dtype(name: Optional[str]) -> str:
    """Validates an ``inference_dtype`` name (None means ``'fp32'``)."""
    name = 'fp32' if name is None else str(name).lower()
    if name not in INFERENCE_DTYPES:
        raise ValueError(f"inference_dtype={name!r}; use 'fp32', 'bf16' or "
                         f"'fp16'.")
    return name


def inference_autocast(name: Optional[str],
                       device_type: str) -> ContextManager:
    """The autocast context of ``inference_dtype`` on a device type.

    Args:
        name (str, optional): ``'fp32'`` (no autocast), ``'bf16'`` or
            ``'fp16'``.
        device_type (str): ``'cpu'``, ``'cuda'``, ...

    Raises:
        ValueError: ``'fp16'`` on a CPU (PyTorch's CPU autocast computes in
            bfloat16 only).
    """
    dtype = INFERENCE_DTYPES[check_inference_dtype(name)]
    if dtype is None:
        return contextlib.nullcontext()
    if dtype == torch.float16 and device_type == 'cpu':
        raise ValueError(
            "inference_dtype='fp16' needs a CUDA device; on the CPU use "
            "'bf16' (--cfg-options model.test_cfg.inference_dtype=bf16) or "
            "'fp32'.")
    return torch.autocast(device_type=device_type, dtype=dtype)


def float32_region(device_type: str) -> ContextManager:
    """Switches autocast off (a float32 region inside an autocast one)."""
    if not torch.is_autocast_enabled(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def to_dtype(obj: Any, dtype: torch.dtype) -> Any:
    """Casts floating tensors (also inside tuples/lists/dicts) to ``dtype``."""
    if torch.is_tensor(obj):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_dtype(o, dtype) for o in obj)
    if isinstance(obj, dict):
        return {k: to_dtype(v, dtype) for k, v in obj.items()}
    return obj


def to_float32(obj: Any) -> Any:
    """Casts floating tensors (also inside tuples/lists/dicts) to float32."""
    return to_dtype(obj, torch.float32)
