"""The CPU fast path of bilinear upsampling (two matrix products) against
``F.interpolate``, and where it is taken."""
import pytest
import torch
import torch.nn.functional as F

from mmovss.models.utils import separable_resize as sr


@pytest.mark.parametrize('shape,size', [
    ((1, 32, 14, 14), (224, 224)),   # a ViT-B/16 window's logits
    ((2, 5, 7, 9), (30, 41)),        # odd, non-square, batch of two
    ((1, 3, 14, 14), (200, 150)),    # a clipped window
    ((1, 4, 6, 5), (6, 20)),         # one side kept
])
@pytest.mark.parametrize('align_corners', [False, True])
def test_products_equal_interpolate(shape, size, align_corners):
    torch.manual_seed(0)
    x = torch.randn(shape)
    ref = F.interpolate(x, size=size, mode='bilinear', align_corners=align_corners)
    assert sr._product_cost(shape[-2:], size) <= sr.MAX_PRODUCT_COST
    out = sr.resize_bilinear(x, size, align_corners)
    assert out.shape == ref.shape and out.dtype == x.dtype
    # float rounding: PyTorch computes the weights in float32, the matrices
    # hold them computed in float64 (a few 1e-6 on maps of order 1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    # a different result would show: the matrices are PyTorch's weights
    assert not torch.allclose(out, F.interpolate(x, size=size, mode='nearest'),
                              atol=1e-3)


def test_interpolation_matrix_rows_are_the_kernel_weights():
    r = sr.interpolation_matrix(4, 8)
    assert r.shape == (8, 4)
    torch.testing.assert_close(r.sum(1), torch.ones(8))  # weights sum to one
    assert int((r > 0).sum(1).max()) <= 2                # two neighbours at most
    x = torch.arange(4.)
    torch.testing.assert_close(r @ x, F.interpolate(x[None, None], size=8,
                                                    mode='linear')[0, 0])


def test_bf16_maps_computed_in_float32_and_cast_back():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 14, 14).bfloat16()
    out = sr.resize_bilinear(x, (224, 224))
    assert out.dtype == torch.bfloat16
    ref = F.interpolate(x.float(), size=(224, 224), mode='bilinear')
    torch.testing.assert_close(out.float(), ref, rtol=1e-2, atol=1e-2)


def test_expensive_resizes_take_interpolate(monkeypatch):
    """Large inputs (the final resize to the image size) keep the kernel."""
    sr.resize_bilinear(torch.randn(1, 2, 14, 14), (224, 224))  # matrices cached
    called = []
    real = F.interpolate
    monkeypatch.setattr(sr.F, 'interpolate',
                        lambda *a, **k: called.append(1) or real(*a, **k))
    x = torch.randn(1, 2, 336, 505)
    assert sr._product_cost((336, 505), (426, 640)) > sr.MAX_PRODUCT_COST
    sr.resize_bilinear(x, (426, 640))
    assert called
    called.clear()
    sr.resize_bilinear(torch.randn(1, 2, 14, 14), (224, 224))
    assert not called
