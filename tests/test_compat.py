"""mmovss.compat: mmseg imports on mmcv-lite; stand-in ops match their math."""
import importlib
import math
import subprocess
import sys

import pytest
import torch

from mmovss import compat


def test_mmseg_subpackages_import():
    for name in ('mmseg.models', 'mmseg.datasets', 'mmseg.apis'):
        assert importlib.import_module(name) is not None


def test_import_in_fresh_interpreter():
    # Importing mmovss must be enough, in a process where nothing else ran.
    code = 'import mmovss, mmseg.models, mmseg.datasets, mmseg.apis; print("ok")'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith('ok')


@pytest.mark.skipif(compat.has_compiled_mmcv_ops(), reason='a full mmcv is installed')
def test_unknown_ops_fail_like_a_missing_module():
    import mmcv.ops
    assert mmcv.ops.point_sample is compat.point_sample
    assert mmcv.ops.sigmoid_focal_loss is compat.sigmoid_focal_loss
    with pytest.raises(ModuleNotFoundError, match='compiled ops'):
        from mmcv.ops import CrissCrossAttention  # noqa: F401
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module('mmcv.ops.multi_scale_deform_attn')
    # mmseg's own guards turned the missing op into None instead of failing.
    from mmseg.models.decode_heads import cc_head, psa_head
    assert cc_head.CrissCrossAttention is None
    assert psa_head.PSAMask is None


def _bilinear_reference(feat, x, y):
    """Bilinear interpolation at pixel coords (x, y), zero outside (align_corners=False)."""
    _, h, w = feat.shape
    px, py = x * w - 0.5, y * h - 0.5
    x0, y0 = math.floor(px), math.floor(py)
    out = torch.zeros(feat.shape[0], dtype=feat.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            wx = 1 - abs(px - xi)
            wy = 1 - abs(py - yi)
            if 0 <= xi < w and 0 <= yi < h:
                out += wx * wy * feat[:, yi, xi]
    return out


def test_point_sample_matches_bilinear_formula():
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    points = torch.rand(2, 11, 2, generator=g, dtype=torch.float64)
    out = compat.point_sample(feat, points)
    assert out.shape == (2, 3, 11)
    for n in range(2):
        for p in range(11):
            x, y = points[n, p].tolist()
            torch.testing.assert_close(out[n, :, p], _bilinear_reference(feat[n], x, y))
    grid = points.view(2, 1, 11, 2)
    assert compat.point_sample(feat, grid).shape == (2, 3, 1, 11)


def _focal_reference(logits, target, gamma, alpha, weight):
    n, c = logits.shape
    total = torch.zeros((), dtype=logits.dtype)
    per = torch.zeros(n, c, dtype=logits.dtype)
    for i in range(n):
        for j in range(c):
            p = 1 / (1 + math.exp(-logits[i, j].item()))
            if target[i].item() == j:
                v = -alpha * (1 - p) ** gamma * math.log(p)
            else:
                v = -(1 - alpha) * p ** gamma * math.log(1 - p)
            if weight is not None:
                v *= weight[min(target[i].item(), c - 1)].item()
            per[i, j] = v
            total += v
    return per, total


@pytest.mark.parametrize('use_weight', [False, True])
def test_sigmoid_focal_loss_matches_paper_formula(use_weight):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64) * 3
    target = torch.tensor([0, 1, 2, 3, 4, 1])  # 4 == background: all negatives
    weight = torch.rand(4, generator=g, dtype=torch.float64) if use_weight else None
    per, total = _focal_reference(logits, target, 2.0, 0.25, weight)
    torch.testing.assert_close(
        compat.sigmoid_focal_loss(logits, target, 2.0, 0.25, weight, 'none'), per)
    torch.testing.assert_close(
        compat.sigmoid_focal_loss(logits, target, 2.0, 0.25, weight, 'sum'), total)
    torch.testing.assert_close(
        compat.sigmoid_focal_loss(logits, target, 2.0, 0.25, weight, 'mean'), total / 6)


def test_sigmoid_focal_loss_gradient_and_mmseg_loss():
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 2, 1, 3, 0])
    torch.autograd.gradcheck(
        lambda x: compat.sigmoid_focal_loss(x, target, 2.0, 0.25, None, 'mean'), (logits,))
    # mmseg's FocalLoss (which calls mmcv.ops.sigmoid_focal_loss on CUDA only)
    # agrees with its own pure-PyTorch path on the CPU.
    import torch.nn.functional as F

    from mmseg.models.losses.focal_loss import py_sigmoid_focal_loss
    one_hot = F.one_hot(target, 4)[:, :3].to(torch.float64)
    ref = py_sigmoid_focal_loss(logits, one_hot, gamma=2.0, alpha=0.25, reduction='sum')
    ours = compat.sigmoid_focal_loss(logits, target, 2.0, 0.25, None, 'sum')
    torch.testing.assert_close(ours, ref)


def test_sigmoid_focal_loss_rejects_bad_input():
    with pytest.raises(TypeError, match='long'):
        compat.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match='reduction'):
        compat.sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long),
                                  reduction='avg')


def test_weights_only_still_refuses_arbitrary_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ('pwned',))

    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path)


def test_mmengine_message_hub_round_trips_weights_only(tmp_path):
    import numpy as np

    from mmengine.logging import HistoryBuffer, MessageHub
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', np.float64(0.25))
    hub.update_info('iter', 3)
    path = tmp_path / 'hub.pth'
    torch.save({'message_hub': hub.state_dict(), 'arr': np.arange(3)}, path)
    loaded = torch.load(path)  # weights_only=True by default
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx(0.375)
    assert buf.statistics('max') == pytest.approx(0.5)
    np.testing.assert_array_equal(loaded['arr'], np.arange(3))
