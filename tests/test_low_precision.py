"""Low-precision inference of the training-free family (weights cast once).

``test_cfg.inference_dtype='bf16'`` with ``precision_mode='cast'`` casts the
image tower's weights to bfloat16 once (:mod:`mmovss.models.utils.low_precision`); these tests check
that the weights really are bfloat16 (not autocast), that labels stay within
the agreement rule of docs/benchmarks.md (>= 99.5% of pixels equal to the
float32 labels) on tiny random models, that fp16 on CPU is refused and that
a CPU whose bf16 products are slower than fp32 falls back to fp32.

The CPU speed check is replaced by a stub in every test (it is a timing of
this machine, not a property of the code); the fallback test forces it.
"""
import copy
import json
import os
import warnings

import pytest
import torch

import mmovss  # noqa: F401
from mmovss.benchmarking.precision import LABEL_AGREEMENT
from mmovss.models.utils import low_precision as lp
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The agreement rule of docs/benchmarks.md (labels equal to float32), for
#: full-size models.
AGREEMENT = LABEL_AGREEMENT
#: The bound on tiny random CLIPs: their name similarities are near ties (a
#: random text tower maps all prompts close together), so bf16 rounding flips
#: up to about 1.2% of the labels (measured per method in docs/benchmarks.md,
#: "bf16"); a wrong cast (wrong weights, a missing float32 step) flips most.
TINY_AGREEMENT = 0.98
FAMILY = {
    'maskclip': 'maskclip/maskclip_vit-b16_voc21.py',
    'sclip': 'sclip/sclip_vit-b16_voc21.py',
    'clearclip': 'clearclip/clearclip_vit-b16_voc21.py',
    'naclip': 'naclip/naclip_vit-b16_voc21.py',
    'naclip-pamr': 'naclip/naclip-pamr_vit-b16_voc21.py',
    'proxyclip': 'proxyclip/proxyclip_vit-b16-dino-b8_voc21.py',
    'resclip': 'resclip/resclip_vit-b16_pascal_context_60.py',
    'scclip': 'scclip/scclip_vit-b16_voc21.py',
}
NAMES = ['sky', 'road', 'car', 'tree', 'person', 'building', 'grass', 'water']


@pytest.fixture(autouse=True)
def bf16_is_fast(monkeypatch):
    """The CPU check says bf16 is faster (overridden by the fallback test)."""
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=True, message=None, bf16_gflops=2.0, fp32_gflops=1.0))


def tiny_model_cfg(family: str) -> dict:
    """The family's config with a tiny random 12-block CLIP (and DINO)."""
    from mmovss.benchmarking.random_weights import use_random_weights
    # ResCLIP / SC-CLIP read blocks of ViT-B/16's 12
    layers = 12 if family in ('resclip', 'scclip') else 4
    tiny = tiny_clip_cfg(vision_cfg=dict(layers=layers))
    cfg = Config.fromfile(os.path.join(REPO, 'configs', FAMILY[family]))
    model_cfg = use_random_weights(cfg.model.to_dict())
    for part in ('backbone', 'text_encoder'):
        model_cfg[part].update(model_name=None, model_cfg=tiny,
                               pretrained=None)
    model_cfg['text_encoder'].update(cache_dir=None, templates='single')
    if 'vfm' in model_cfg['backbone']:
        model_cfg['backbone']['vfm']['model_kwargs'] = dict(embed_dim=64,
                                                            num_heads=2)
    model_cfg['decode_head']['in_channels'] = tiny['embed_dim']
    model_cfg['test_cfg'].update(crop_size=(32, 32), stride=(16, 16))
    model_cfg['vocabulary'] = NAMES
    return model_cfg


def build(model_cfg: dict, **test_cfg):
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg)).eval()
    model.test_cfg.update(dict(dict(precision_mode='cast'), **test_cfg))
    return model


def predict(model, seed: int = 5):
    torch.manual_seed(seed)
    image = torch.randn(1, 3, 56, 72)
    sample = SegDataSample(metainfo=dict(ori_shape=(60, 80),
                                         img_shape=(56, 72),
                                         pad_shape=(56, 72)))
    with torch.no_grad():
        return model.predict(image, [sample])[0].pred_sem_seg.data


def linear_dtypes(module):
    return {m.weight.dtype for m in module.modules()
            if isinstance(m, torch.nn.Linear)}


@pytest.mark.parametrize('family', sorted(FAMILY))
def test_bf16_labels_agree_with_fp32(family):
    model = build(tiny_model_cfg(family))
    ref = predict(model)  # float32 first, then the same model cast
    model.test_cfg['inference_dtype'] = 'bf16'
    out = predict(model)
    assert model.inference_precision['run'] == 'bf16'
    assert linear_dtypes(model.backbone) == {torch.bfloat16}
    agreement = float((out == ref).float().mean())
    assert agreement >= TINY_AGREEMENT, f'{family}: {agreement:.4f}'


def test_weights_are_bf16_not_autocast(monkeypatch):
    model = build(tiny_model_cfg('naclip'), inference_dtype='bf16')
    visual = model.backbone.visual
    assert linear_dtypes(visual) == {torch.float32}  # nothing before a run
    seen = []
    block = visual.transformer.resblocks[0]
    block.mlp.c_fc.register_forward_hook(
        lambda m, i, o: seen.append((i[0].dtype, o.dtype,
                                     torch.is_autocast_enabled('cpu'))))
    monkeypatch.setattr(torch, 'autocast', None)  # autocast would raise
    predict(model)
    assert linear_dtypes(visual) == {torch.bfloat16}
    assert visual.transformer.resblocks[0].attn.in_proj_weight.dtype == \
        torch.bfloat16
    # float32 where precision needs it
    assert visual.proj.dtype == visual.ln_post.weight.dtype == \
        visual.conv1.weight.dtype == block.ln_1.weight.dtype == torch.float32
    assert seen and all(s == (torch.bfloat16, torch.bfloat16, False)
                        for s in seen)
    # the text tower stays float32 unless cast_text_encoder=True
    assert linear_dtypes(model.text_encoder) == {torch.float32}
    emb = model.class_embeddings().embeds
    assert emb.dtype == torch.float32


def test_quick_gelu_folded_into_the_weights_before_the_cast():
    """The fold gives the MLP's float32 output to rounding, once, and the
    cast model runs SiLU MLPs (one pass) with the folded weights."""
    model = build(tiny_model_cfg('naclip'))
    mlps = [b.mlp for b in model.backbone.visual.transformer.resblocks]
    assert {type(m.gelu).__name__ for m in mlps} == {'QuickGELU'}
    x = torch.randn(2, 5, mlps[0].c_fc.in_features)
    with torch.no_grad():
        ref = [m(x) for m in mlps]
        weights = mlps[0].c_fc.weight.clone()
        assert lp.fold_quick_gelu(model.backbone) == len(mlps)
        assert lp.fold_quick_gelu(model.backbone) == 0  # idempotent
        out = [m(x) for m in mlps]
    assert {type(m.gelu).__name__ for m in mlps} == {'SiLU'}
    assert torch.allclose(mlps[0].c_fc.weight, weights * 1.702)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # a hooked MLP (a caller reading its modules) is left as it is
    hooked = build(tiny_model_cfg('naclip'))
    block = hooked.backbone.visual.transformer.resblocks[0]
    block.mlp.c_fc.register_forward_hook(lambda *args: None)
    assert lp.fold_quick_gelu(hooked.backbone) == len(mlps) - 1
    assert type(block.mlp.gelu).__name__ == 'QuickGELU'
    # the cast path folds (before casting) and keeps the labels
    cast = build(tiny_model_cfg('naclip'), inference_dtype='bf16')
    predict(cast)
    assert {type(b.mlp.gelu).__name__ for b in
            cast.backbone.visual.transformer.resblocks} == {'SiLU'}
    assert cast.backbone.visual.transformer.resblocks[0].mlp.c_fc.weight.dtype == \
        torch.bfloat16


def test_cast_text_encoder_option():
    model = build(tiny_model_cfg('sclip'), inference_dtype='bf16',
                  cast_text_encoder=True)
    ref = build(tiny_model_cfg('sclip')).class_embeddings().embeds
    with torch.no_grad():
        emb = model.class_embeddings().embeds
    assert linear_dtypes(model.text_encoder) == {torch.bfloat16}
    assert model.text_encoder.tower.text_projection.dtype == torch.float32
    assert emb.dtype == torch.float32
    assert model.text_encoder.compute_dtype() == 'torch.bfloat16'  # cache key
    cos = (emb * ref).sum(-1)
    assert float(cos.min()) > 0.99  # bf16 rounding, not a different model


def test_fp16_on_cpu_refused():
    model = build(tiny_model_cfg('maskclip'), inference_dtype='fp16')
    with pytest.raises(ValueError, match=r"inference_dtype='fp16' needs a "
                       r"CUDA device.*'bf16'"):
        predict(model)
    assert linear_dtypes(model.backbone) == {torch.float32}


def test_unknown_precision_mode_refused():
    with pytest.raises(ValueError, match='test_cfg.precision_mode'):
        build(dict(tiny_model_cfg('maskclip'),
                   test_cfg=dict(mode='whole', precision_mode='half')))
    # inference_dtype='bf16' alone selects the cast path (bf16 weights) ...
    cfg = tiny_model_cfg('maskclip')
    cfg['test_cfg']['inference_dtype'] = 'bf16'
    init_default_scope('mmseg')
    model = MODELS.build(cfg).eval()
    predict(model)
    assert linear_dtypes(model.backbone) == {torch.bfloat16}
    # ... and precision_mode='autocast' keeps float32 weights
    cfg = tiny_model_cfg('maskclip')
    cfg['test_cfg'].update(inference_dtype='bf16', precision_mode='autocast')
    model = MODELS.build(cfg).eval()
    predict(model)
    assert linear_dtypes(model.backbone) == {torch.float32}


def test_slow_bf16_cpu_falls_back_to_fp32(monkeypatch):
    monkeypatch.setattr(lp, 'cpu_bf16_check', lambda measure=None: dict(
        kept=False, bf16_gflops=1.0, fp32_gflops=2.0,
        message='bf16 matrix products are slower than fp32 on this CPU'))
    model_cfg = tiny_model_cfg('naclip')
    ref = predict(build(model_cfg))
    model = build(model_cfg, inference_dtype='bf16')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = predict(model)
    assert any('slower than fp32' in str(w.message) and 'float32 instead'
               in str(w.message) for w in caught)
    assert model.inference_precision['run'] == 'fp32'
    assert linear_dtypes(model.backbone) == {torch.float32}
    assert torch.equal(out, ref)


def test_cpu_bf16_check_rule():
    # the real function (the autouse stub replaced the module attribute)
    check = _real_check()
    assert check(measure=lambda: (1.0, 2.0))['kept'] is False
    assert 'slower' in check(measure=lambda: (1.0, 2.0))['message']
    assert check(measure=lambda: (3.0, 2.0))['kept'] is True


def _real_check():
    import importlib
    return importlib.reload(lp).cpu_bf16_check


def test_back_to_fp32_after_cast_refused():
    model = build(tiny_model_cfg('clearclip'), inference_dtype='bf16')
    predict(model)
    model.test_cfg['inference_dtype'] = 'fp32'
    with pytest.raises(ValueError, match='rebuild the model'):
        predict(model)


def test_autocast_mode_keeps_float32_weights():
    model = build(tiny_model_cfg('clearclip'), inference_dtype='bf16',
                  precision_mode='autocast')
    predict(model)
    assert linear_dtypes(model.backbone) == {torch.float32}


@pytest.mark.parametrize('family', ['naclip', 'naclip-pamr', 'sclip'])
def test_labels_without_softmax_equal_the_softmax_labels(family):
    cfg = tiny_model_cfg(family)
    cfg['decode_head'].update(prob_thd=0.0, area_thd=None)
    model = build(cfg)
    ref = predict(model)
    model.decode_head.labels_without_softmax = True
    calls = []
    original = model.decode_head._labels_without_softmax
    model.decode_head._labels_without_softmax = \
        lambda *a: calls.append(1) or original(*a)
    out = predict(model)
    assert calls and len(ref.unique()) > 2
    assert torch.equal(out, ref)


# ----------------------------------------------- the parity fixtures' models
def _parity_fixtures():
    try:
        import test_parity as parity
    except ImportError:  # pragma: no cover - run from elsewhere
        return None, []
    return parity, parity.fixtures_of(lambda repo: True)


PARITY, PARITY_FIXTURES = _parity_fixtures()


@pytest.mark.skipif(not PARITY_FIXTURES,
                    reason='no parity fixtures (../shared/parity/A absent; '
                    'set MMOVSS_PARITY_DIR)')
@pytest.mark.parametrize('json_path', PARITY_FIXTURES,
                         ids=lambda p: os.path.basename(p)[:-5])
def test_bf16_on_parity_fixture_models(json_path):
    with open(json_path) as f:
        repo = json.load(f)['reference_repo']
    if repo in ('yvhangyang/ResCLIP', 'SuleBai/SC-CLIP'):
        import test_parity_resclip_scclip as other
        make = other.Run
    else:
        make = PARITY.Run

    run = make(json_path)
    _, inputs, _ = PARITY.Run.data(run)
    # one 112 x 112 window of the fixture's image (the test is about the
    # model's precision, not the protocol; tests/test_parity.py runs that)
    inputs = torch.nn.functional.interpolate(inputs, size=(112, 112),
                                             mode='bilinear')
    run.model.test_cfg.update(mode='whole', precision_mode='cast')

    def labels(dtype):
        run.model.test_cfg['inference_dtype'] = dtype
        with torch.no_grad():
            return run.model.predict(inputs)[0].pred_sem_seg.data

    ref, out = labels('fp32'), labels('bf16')
    assert linear_dtypes(run.model.backbone) == {torch.bfloat16}
    agreement = float((out == ref).float().mean())
    assert agreement >= TINY_AGREEMENT, f'{os.path.basename(json_path)}: ' \
        f'{agreement:.4f}'


@pytest.mark.parametrize('norm', ['layer', 'group', 'batch'])
def test_cast_norms_keep_float32_statistics(norm):
    """A cast tower's norms keep float32 parameters and normalise a bf16
    input with float32 statistics (PyTorch's mixed-type CPU kernels for
    LayerNorm, GroupNorm and batch norm in inference): the output is
    bf16 and equals normalising a float32 copy, then rounding, within one bf16
    step; a map whose mean is large against its spread would lose everything
    to bf16 statistics."""
    import torch.nn as nn

    from mmovss.models.utils.low_precision import cast_tower

    torch.manual_seed(0)
    layer = {'layer': lambda: nn.LayerNorm(16), 'group': lambda: nn.GroupNorm(4, 16),
             'batch': lambda: nn.BatchNorm2d(16)}[norm]()
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    layer.eval()
    tower = nn.Sequential(nn.Conv2d(16, 16, 1), layer)
    reference = copy.deepcopy(layer)
    cast_tower(tower, torch.bfloat16)
    assert tower[0].weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in layer.parameters())
    # mean 300 against spread 1: bf16 (8-bit mantissa) rounds the spread away
    x = (torch.randn(2, 16, 6, 6) + 300).bfloat16()
    if norm == 'layer':
        x = x.permute(0, 2, 3, 1)
    with torch.no_grad():
        out = layer(x)
        expect = reference(x.float())
    assert out.dtype == torch.bfloat16
    step = expect.abs().clamp(min=1e-3) * 2 ** -7
    assert bool(((out.float() - expect).abs() <= step).all())
