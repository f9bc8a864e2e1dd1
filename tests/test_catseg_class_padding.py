"""CAT-Seg class aggregation: the padded linear attention summed in closed form.

``CATSegClassAggregation`` pads the class sequence to ``pad_len`` with copies
of one learnable token (the released code's fixed-length sequence). With
linear attention the padded rows' contribution is computed once (count x
the token's term) instead of as ``pad_len - N`` rows per position; this must
equal the explicit padded rows (the reference path, ``_keys_values`` with
``pad=True``) and change nothing without padding.
"""
import pytest
import torch

from mmovss.models.decode_heads.catseg_aggregation import (
    CATSegClassAggregation,
    elu_feature_map,
)


def _layer(pad_len, guidance_dims=4):
    torch.manual_seed(0)
    layer = CATSegClassAggregation(16, guidance_dims, 4, 'linear', pad_len).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(0, 0.5)
    return layer


def _explicit(layer, x, guidance):
    """Linear attention over the explicitly padded rows (reference path)."""
    b, c, n, h, w = x.shape
    tokens = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, n, c)
    g = guidance.repeat_interleave(h * w, dim=0) if guidance is not None else None
    k, v = layer._keys_values(tokens, g, pad=True)
    assert k.shape[1] == max(n, layer.pad_len)
    k = elu_feature_map(k)
    kv = torch.einsum('pshd,pshe->phde', k, v)
    y = layer.norm1(tokens)
    y = torch.cat([y, g], dim=-1) if g is not None else y
    q = elu_feature_map(layer._heads(layer.q(y)))
    att = torch.einsum('plhd,phde->plhe', q, kv) / (
        torch.einsum('plhd,phd->plh', q, k.sum(dim=1)) + 1e-6)[..., None]
    t = tokens + att.flatten(2)
    t = t + layer.mlp(layer.norm2(t))
    return x + t.view(b, h, w, n, c).permute(0, 4, 3, 1, 2)


@pytest.mark.parametrize('pad_len,num,guided', [(12, 3, True), (12, 3, False), (0, 5, True),
                                                 (4, 4, True)])
def test_closed_form_padding_equals_padded_rows(pad_len, num, guided):
    layer = _layer(pad_len, 4 if guided else 0)
    x = torch.randn(2, 16, num, 3, 5)
    guidance = torch.randn(2, num, 4) if guided else None
    with torch.no_grad():
        fast = layer(x, guidance)
        ref = _explicit(layer, x, guidance)
        chunked = layer(x, guidance, class_chunk=2)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked, ref, atol=1e-5, rtol=1e-5)


def test_padding_changes_the_output():
    """The padding term is really added (the test above could not fail without it)."""
    layer = _layer(12)
    x, guidance = torch.randn(1, 16, 3, 2, 2), torch.randn(1, 3, 4)
    with torch.no_grad():
        padded = layer(x, guidance)
        layer.pad_len = 0
        unpadded = layer(x, guidance)
    assert (padded - unpadded).abs().max() > 1e-3
