"""FLOPs of a run: the whole predict, the image encoder, the matmul shapes.

Counted with :class:`torch.utils.flop_counter.FlopCounterMode` in one
separate, untimed pass (counting intercepts every operator, which would
distort the timing). What it counts, per its formulas: ``2 * M * K * N`` per
matrix product (``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``matmul``'s
decompositions), ``2 * prod(out) * C_in / groups * prod(kernel)`` per
convolution, and the attention kernels (``scaled_dot_product_attention``)
as their two products, ``q @ k^T`` and ``attn @ v``. PyTorch's counter has no
formula for several kernels that models run, which would count zero: the CPU
attention kernel (``_scaled_dot_product_flash_attention_for_cpu``, every
``F.scaled_dot_product_attention`` on CPU), ``nn.MultiheadAttention``'s
fused inference path (``_native_multi_head_attention``, which also hides its
projections), ``nn.TransformerEncoderLayer``'s (``_transformer_encoder_layer_fwd``:
a whole layer, attention and MLP, in one kernel), the fused linear + GELU/ReLU
product (``_addmm_activation``), ``addbmm`` and the matrix-vector and vector
products (``mv``, ``addmv``, ``dot``, ``vdot``: ``matrix @ vector``);
:data:`EXTRA_FORMULAS` counts them as the products they are.
Not counted (zero FLOPs): bias additions, norms, softmax, activations,
interpolation, pooling and other element-wise work; these are memory-bound,
and the FLOP count is the matrix work a matrix unit could do.

The *image encoder* is the segmentor's ``backbone`` plus its ``neck`` (if
any), over every call of a predict (all sliding windows): the counter's total
is read around each outermost call of those modules.
"""
import contextlib
import math
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from .timing import synchronize

aten = torch.ops.aten


def _attention_flops(query_shape, key_shape, value_shape, *args,
                     out_shape=None, **kwargs) -> int:
    """``q @ k^T`` and ``attn @ v``: ``2 * B * L * S * (E + Ev)``.

    Shapes ``(..., L, E)``, ``(..., S, E)`` and ``(..., S, Ev)``, the
    leading dimensions (batch, heads) broadcast as in
    ``F.scaled_dot_product_attention``.
    """
    batch = math.prod(torch.broadcast_shapes(query_shape[:-2], key_shape[:-2]))
    length, dim = query_shape[-2:]
    keys, value_dim = key_shape[-2], value_shape[-1]
    return 2 * batch * length * keys * (dim + value_dim)


def _native_mha_flops(query_shape, key_shape, value_shape, embed_dim,
                      num_heads, *args, out_shape=None, **kwargs) -> int:
    """``nn.MultiheadAttention``'s fused path: projections and attention.

    Batch-first ``(B, L, E)`` query and ``(B, S, E)`` key/value: the q, k, v
    and output projections (``2 * tokens * E * E`` each) and the attention
    products (:func:`_attention_flops` over the heads).
    """
    batch, length = query_shape[0], query_shape[1]
    keys = key_shape[1]
    projections = 2 * batch * embed_dim * embed_dim * (2 * length + 2 * keys)
    return projections + 2 * batch * length * keys * 2 * embed_dim


def _encoder_layer_flops(src, embed_dim, num_heads, qkv_weight, qkv_bias,
                         proj_weight, proj_bias, use_gelu, norm_first, eps,
                         norm_weight_1, norm_bias_1, norm_weight_2, norm_bias_2,
                         ffn_weight_1, *args, out_val=None, **kwargs) -> int:
    """``nn.TransformerEncoderLayer``'s fused inference path, a whole layer.

    Batch-first ``(B, L, E)`` tokens (or a nested tensor of sequences of
    their own lengths, the path with a padding mask): the q, k, v and output
    projections (``2 * tokens * E * 4E``), the MLP (``2 * tokens * E * F``
    twice, ``F`` the hidden width) and the attention products
    (``2 * L * L * 2E`` per sequence). Reads the tensors themselves (a
    nested tensor has no shape).
    """
    lengths = (src._nested_tensor_size()[:, 0].tolist() if src.is_nested
               else [int(src.shape[1])] * int(src.shape[0]))
    hidden = int(ffn_weight_1.shape[0])
    products = 2 * sum(lengths) * embed_dim * (4 * embed_dim + 2 * hidden)
    return products + sum(2 * n * n * 2 * embed_dim for n in lengths)


_encoder_layer_flops._get_raw = True  # FlopCounterMode passes the tensors


def _addmm_flops(bias_shape, a_shape, b_shape, *args, out_shape=None,
                 **kwargs) -> int:
    """A product ``(M, K) @ (K, N)`` after a bias: ``2 * M * K * N``."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def _addbmm_flops(bias_shape, a_shape, b_shape, *args, out_shape=None,
                  **kwargs) -> int:
    """``B`` products ``(M, K) @ (K, N)`` summed: ``2 * B * M * K * N``."""
    return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]


def _mv_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """``(M, K) @ (K,)`` (``mv``) or ``(K,) . (K,)`` (``dot``): ``2 * M * K``."""
    return 2 * math.prod(a_shape)


def _addmv_flops(bias_shape, a_shape, b_shape, *args, out_shape=None,
                 **kwargs) -> int:
    """``(M, K) @ (K,)`` after a bias: ``2 * M * K``."""
    return 2 * math.prod(a_shape)


#: Formulas for kernels PyTorch's counter leaves at zero (see the module
#: docstring), by operator name (absent operators are skipped).
EXTRA_FORMULAS = {
    '_scaled_dot_product_flash_attention_for_cpu': _attention_flops,
    '_scaled_dot_product_fused_attention_overrideable': _attention_flops,
    '_native_multi_head_attention': _native_mha_flops,
    '_transformer_encoder_layer_fwd': _encoder_layer_flops,
    '_addmm_activation': _addmm_flops,
    'addbmm': _addbmm_flops,
    'mv': _mv_flops,
    'dot': _mv_flops,
    'vdot': _mv_flops,
    'addmv': _addmv_flops,
}


def _custom_mapping() -> dict:
    """:data:`EXTRA_FORMULAS` for the operators this torch has and its
    counter does not count already."""
    from torch.utils.flop_counter import flop_registry
    mapping = {}
    for name, formula in EXTRA_FORMULAS.items():
        op = getattr(aten, name, None)
        if op is not None and op not in flop_registry:
            mapping[op] = formula
    return mapping


def encoder_modules(model: torch.nn.Module) -> List[torch.nn.Module]:
    """The image encoder of a segmentor: its backbone and neck (if any)."""
    return [m for m in (getattr(model, 'backbone', None),
                        getattr(model, 'neck', None))
            if isinstance(m, torch.nn.Module)]


class _OutermostCalls:
    """Calls ``enter``/``leave`` around the outermost calls of modules.

    A neck or sub-module called from inside the backbone is part of the same
    outermost call (counted once).
    """

    def __init__(self, modules: Sequence[torch.nn.Module],
                 enter: Callable[[], None], leave: Callable[[], None]):
        self.depth = 0
        self.calls = 0
        self.handles = []
        self._enter, self._leave = enter, leave
        for module in modules:
            self.handles.append(module.register_forward_pre_hook(self._pre))
            self.handles.append(module.register_forward_hook(self._post))

    def _pre(self, module, args):
        if self.depth == 0:
            self._enter()
        self.depth += 1

    def _post(self, module, args, output):
        self.depth -= 1
        if self.depth == 0:
            self.calls += 1
            self._leave()

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class EncoderTimer(_OutermostCalls):
    """Wall-clock seconds spent inside the image encoder (hooks).

    Used during the timed runs: on CPU the two hooks only read the clock; on
    CUDA they synchronise around each encoder call (which removes the
    overlap of the host with the GPU at those two points only).

    Attributes:
        seconds (float): The running total; read it before and after a run.
        cpu_seconds (float): The same in this process's CPU time (all
            threads), which other processes on the cores inflate less.
    """

    def __init__(self, modules: Sequence[torch.nn.Module], device='cpu'):
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self._start = self._cpu_start = 0.0
        self._device = device
        super().__init__(modules, self._begin, self._end)

    def _begin(self):
        synchronize(self._device)
        self._cpu_start = time.process_time()
        self._start = time.perf_counter()

    def _end(self):
        synchronize(self._device)
        self.seconds += time.perf_counter() - self._start
        self.cpu_seconds += time.process_time() - self._cpu_start


class MatmulShapes(TorchDispatchMode):
    """Records the ``(M, K, N, dtype)`` of every ``mm``/``addmm`` (and fused
    ``_addmm_activation``) and its FLOPs.

    The linear layers of a model run as these two operators (a batched
    ``(B, L, C) @ W`` is folded to one ``mm``); their shapes are the model's
    own shapes for the matrix peak (:mod:`.peak`).

    Attributes:
        flops (dict): ``(M, K, N, dtype name) -> FLOPs`` summed over calls.
    """

    def __init__(self):
        super().__init__()
        self.flops: Dict[tuple, int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func._overloadpacket
        pair = (args[0], args[1]) if packet is aten.mm else \
            (args[1], args[2]) if packet in (aten.addmm, aten._addmm_activation) \
            else None
        if pair is not None and pair[0].dim() == 2 and pair[1].dim() == 2:
            (m, k), n = pair[0].shape, pair[1].shape[1]
            dtype = str(pair[0].dtype).replace('torch.', '')
            self.flops[(int(m), int(k), int(n), dtype)] += 2 * m * k * n
        return func(*args, **(kwargs or {}))

    def dominant(self) -> Optional[dict]:
        """The shape carrying the most FLOPs, with its share of all mm FLOPs.

        Returns:
            dict | None: ``shape`` ([M, K, N]), ``dtype``, ``flops`` (of that
            shape), ``share`` (of all ``mm``/``addmm`` FLOPs); None when
            there was no matrix product.
        """
        if not self.flops:
            return None
        (m, k, n, dtype), flops = max(self.flops.items(),
                                      key=lambda item: item[1])
        return dict(shape=[m, k, n], dtype=dtype, flops=int(flops),
                    share=flops / sum(self.flops.values()))


@contextlib.contextmanager
def parameters_without_grad(model: Optional[torch.nn.Module]):
    """Sets ``requires_grad`` False on ``model``'s parameters, restored after.

    PyTorch's ``FlopCounterMode`` tracks modules with autograd hooks on
    their inputs, and a view of a parameter made under ``torch.no_grad``
    (e.g. learned queries ``weight[None].expand(...)`` passed to a
    norm, as FC-CLIP's decoder does) requires grad without a ``grad_fn``:
    the tracker then fails ("Expected gradient function to be set").
    """
    params = [p for p in model.parameters() if p.requires_grad] \
        if model is not None else []
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


def count_flops(fn: Callable[[], object],
                encoder: Sequence[torch.nn.Module] = (),
                model: Optional[torch.nn.Module] = None) -> dict:
    """Counts the FLOPs of one call of ``fn`` (untimed).

    Args:
        fn: The work, e.g. one ``model.test_step`` (run once, under
            ``torch.no_grad`` and the run's precision by the caller).
        encoder: The modules of the image encoder
            (:func:`encoder_modules`); their outermost calls are counted
            apart.
        model: The model ``fn`` runs: its parameters do not require
            gradients during the count (:func:`parameters_without_grad`).

    Returns:
        dict: ``total`` (FLOPs of the call), ``encoder`` (FLOPs inside the
        encoder modules, None without any call of them), ``encoder_calls``,
        ``by_op`` (``{operator name: FLOPs}``, largest first) and
        ``dominant_matmul`` (:meth:`MatmulShapes.dominant`).
    """
    counter = FlopCounterMode(display=False, custom_mapping=_custom_mapping())
    shapes = MatmulShapes()
    inside = [0]
    marks = []
    calls = _OutermostCalls(
        encoder, lambda: marks.append(counter.get_total_flops()),
        lambda: inside.__setitem__(
            0, inside[0] + counter.get_total_flops() - marks.pop()))
    # The shape recorder below the counter sees the products the counter
    # decomposes composite operators (``linear``, ``matmul``) into.
    with parameters_without_grad(model), calls, shapes, counter:
        fn()
    by_op = {str(op): int(v) for op, v in
             counter.get_flop_counts().get('Global', {}).items()}
    return dict(total=int(counter.get_total_flops()),
                encoder=int(inside[0]) if calls.calls else None,
                encoder_calls=calls.calls,
                by_op=dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
                dominant_matmul=shapes.dominant())
