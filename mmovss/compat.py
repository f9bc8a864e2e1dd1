"""Keeps MMSegmentation importable on mmcv-lite and current PyTorch.

Two gaps are closed here, once, before anything imports :mod:`mmseg`:

1. ``mmcv.ops`` without compiled ops. mmcv-lite ships the Python files of
   ``mmcv.ops`` but not the ``mmcv._ext`` extension, so ``import mmcv.ops``
   fails and with it ``import mmseg.models``. When ``mmcv._ext`` is absent we
   put a small stand-in module at ``sys.modules['mmcv.ops']`` that offers
   pure-PyTorch versions of the names mmseg uses (:func:`point_sample`,
   :func:`sigmoid_focal_loss`). Any other name raises
   :class:`ModuleNotFoundError`, exactly what mmseg's
   ``try: from mmcv.ops import X / except ModuleNotFoundError`` guards expect.
   With a full mmcv installed nothing is touched.

2. ``torch.load`` defaults to ``weights_only=True`` since PyTorch 2.6, and
   mmengine 0.10.7 does not pass the argument. Checkpoints written by
   mmengine's ``CheckpointHook`` carry a few non-tensor objects (the message
   hub's :class:`~mmengine.logging.HistoryBuffer`, NumPy arrays and scalars).
   We allow exactly those types through
   :func:`torch.serialization.add_safe_globals`; ``weights_only`` stays on, so
   an arbitrary pickle is still refused. ``HistoryBuffer`` also pickles its
   class-level table of statistics functions, which needs ``getattr`` (never
   safe to allow); we stop writing that table, since every process rebuilds
   it at import time (``register_statistics`` is a class decorator).
"""
import importlib.util
import sys
import types
import warnings

import torch
import torch.nn.functional as F

__all__ = ['point_sample', 'sigmoid_focal_loss', 'has_compiled_mmcv_ops',
           'install']

_FLT_MIN = torch.finfo(torch.float32).tiny


def point_sample(input: torch.Tensor,
                 points: torch.Tensor,
                 align_corners: bool = False,
                 **kwargs) -> torch.Tensor:
    """Bilinearly samples ``input`` at normalised points (mmcv's definition).

    Points lie in ``[0, 1] x [0, 1]`` (x, y); they are mapped to
    ``grid_sample``'s ``[-1, 1]`` range by ``2 * p - 1`` (PointRend,
    Kirillov et al., CVPR 2020).

    Args:
        input (Tensor): Feature map of shape (N, C, H, W).
        points (Tensor): Points of shape (N, P, 2) or (N, Hg, Wg, 2).
        align_corners (bool): Passed to :func:`torch.nn.functional.grid_sample`.
        **kwargs: Further ``grid_sample`` arguments (``mode``, ``padding_mode``).

    Returns:
        Tensor: (N, C, P) for 3-D points, (N, C, Hg, Wg) for 4-D points.
    """
    add_dim = points.dim() == 3
    if add_dim:
        points = points.unsqueeze(2)
    output = F.grid_sample(
        input, 2.0 * points - 1.0, align_corners=align_corners, **kwargs)
    if add_dim:
        output = output.squeeze(3)
    return output


def sigmoid_focal_loss(input: torch.Tensor,
                       target: torch.Tensor,
                       gamma: float = 2.0,
                       alpha: float = 0.25,
                       weight=None,
                       reduction: str = 'mean') -> torch.Tensor:
    """Sigmoid focal loss with class-index targets (mmcv's op, in PyTorch).

    Focal loss (Lin et al., ICCV 2017, Eq. 5) per element ``(i, c)`` with
    ``p = sigmoid(x_ic)``::

        t_ic = 1 if target_i == c else 0
        l_ic = -alpha (1 - p)^gamma log(p)           if t_ic = 1
        l_ic = -(1 - alpha) p^gamma log(1 - p)       otherwise

    Logarithms are taken of ``max(p, FLT_MIN)`` as mmcv's kernel does. A
    target equal to the number of classes (background) makes every column
    negative. ``weight`` (C,) scales row ``i`` by ``weight[target_i]``.
    ``'mean'`` divides the sum by the number of rows, as mmcv does.

    Args:
        input (Tensor): Logits of shape (N, C).
        target (Tensor): Class indices of shape (N,), dtype long.
        gamma (float): Focusing parameter.
        alpha (float): Balance of positives and negatives.
        weight (Tensor, optional): Per-class weights of shape (C,).
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.

    Returns:
        Tensor: The loss, (N, C) for ``'none'`` else a scalar.
    """
    if target.dtype != torch.long:
        raise TypeError(f'sigmoid_focal_loss: target must be long, got {target.dtype}')
    if input.dim() != 2 or target.dim() != 1 or input.size(0) != target.size(0):
        raise ValueError('sigmoid_focal_loss: expected input (N, C) and target (N,), '
                         f'got {tuple(input.shape)} and {tuple(target.shape)}')
    if reduction not in ('none', 'mean', 'sum'):
        raise ValueError(f"sigmoid_focal_loss: unknown reduction '{reduction}'")
    num_classes = input.size(1)
    p = input.sigmoid()
    one_hot = F.one_hot(target.clamp(0, num_classes), num_classes + 1)[:, :num_classes]
    one_hot = one_hot.to(input.dtype)
    pos = -alpha * (1 - p).pow(gamma) * p.clamp(min=_FLT_MIN).log()
    neg = -(1 - alpha) * p.pow(gamma) * (1 - p).clamp(min=_FLT_MIN).log()
    loss = one_hot * pos + (1 - one_hot) * neg
    if weight is not None and weight.numel() > 0:
        if weight.dim() != 1 or weight.size(0) != num_classes:
            raise ValueError('sigmoid_focal_loss: weight must have shape '
                             f'({num_classes},), got {tuple(weight.shape)}')
        row_weight = weight[target.clamp(max=num_classes - 1)]
        loss = loss * row_weight[:, None]
    if reduction == 'mean':
        return loss.sum() / input.size(0)
    if reduction == 'sum':
        return loss.sum()
    return loss


class _OpsStandIn(types.ModuleType):
    """``mmcv.ops`` stand-in: known pure-PyTorch ops, others missing."""

    __mmovss_standin__ = True

    def __getattr__(self, name):
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)
        raise ModuleNotFoundError(
            f"mmcv.ops.{name} needs mmcv's compiled ops, which mmcv-lite does "
            "not have. Install a full mmcv built for your PyTorch to use it.",
            name=f'mmcv.ops.{name}')


def has_compiled_mmcv_ops() -> bool:
    """Whether a full mmcv (with the ``mmcv._ext`` extension) is installed."""
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def _install_mmcv_ops_standin() -> None:
    if has_compiled_mmcv_ops():
        return
    existing = sys.modules.get('mmcv.ops')
    if existing is not None and getattr(existing, '__mmovss_standin__', False):
        return
    import mmcv
    module = _OpsStandIn(
        'mmcv.ops', 'Pure-PyTorch stand-ins installed by mmovss.compat.')
    module.point_sample = point_sample
    module.sigmoid_focal_loss = sigmoid_focal_loss
    sys.modules['mmcv.ops'] = module
    mmcv.ops = module


def _checkpoint_safe_globals() -> list:
    """Types that mmengine's ``CheckpointHook`` writes besides tensors."""
    import numpy as np

    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    safe = [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar]
    # NumPy >= 1.25 pickles dtypes as instances of per-type classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        safe += [getattr(dtypes, n) for n in dir(dtypes)
                 if n.endswith('DType') and isinstance(getattr(dtypes, n), type)]
    return safe


def _history_buffer_getstate(self) -> dict:
    """``HistoryBuffer`` state without the statistics-function table."""
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def _allow_mmengine_checkpoints() -> None:
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:
        add(_checkpoint_safe_globals())


def allow_cpu_process_groups() -> None:
    """Lets mmengine's ``pytorch`` launcher start Gloo process groups on CPU.

    mmengine 0.10.7 calls ``torch.cuda.set_device(local_rank)`` before
    ``init_process_group`` whatever the backend, which fails on machines
    without a GPU driver (CUDA builds of torch included). Without CUDA the
    call is made a no-op; with CUDA nothing changes.
    """
    if torch.cuda.is_available() or getattr(torch.cuda.set_device, '__mmovss_cpu__', False):
        return
    original = torch.cuda.set_device

    def set_device(device):
        if torch.cuda.is_available():
            original(device)

    set_device.__mmovss_cpu__ = True
    torch.cuda.set_device = set_device


_installed = False


def install() -> None:
    """Applies both fixes; safe to call more than once."""
    global _installed
    if _installed:
        return
    # mmcv warns at import that mmcv-lite lacks MultiScaleDeformableAttention;
    # that is expected here and says nothing to the user.
    warnings.filterwarnings(
        'ignore', message='Fail to import ``MultiScaleDeformableAttention``')
    _install_mmcv_ops_standin()
    _allow_mmengine_checkpoints()
    _installed = True


install()
