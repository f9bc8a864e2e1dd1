"""Times a trained method against its released code, side by side, with equal outputs.

The library of ``tools/analysis_tools/compare_reference_trained.py``. The
official model is built by the method's parity generator
(``tools/parity/<method>_reference.py``, its ``build_official`` function,
ZegFormer's ``build_official_sized``: the released architecture at tiny or at
the released widths, every parameter re-drawn from a seed); its state dict
is converted with our converter (``mmovss/converters/<method>_official.py``)
and loaded *strictly* into our model, built from the same config as the package's parity checker
(``mmovss/testing/official_parity/<method>.py``). Both then run on the same
image; the outputs must agree (per-pixel class scores within ``atol``, labels
>= 99.9% equal, the tolerances of ``tests/test_official_parity.py``) and the
report gives the median seconds per image of each and the ratio ours /
official, in wall-clock and in process CPU time.

SAN (official) and OVSeg are built by :mod:`mmovss.benchmarking.official_builders`
(shared with their generators).

Generic pieces (any two callables): :func:`agreement`, :func:`side_by_side`,
:func:`format_report`, :func:`markdown_row`. Method pieces:
:data:`METHODS` maps a method to a ``pair(generator, args)`` function
returning a :class:`Pair`.
"""
import copy
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch

from .errors import BenchmarkError
from .timing import summarize_times, timed_call

__all__ = ['Pair', 'agreement', 'side_by_side', 'format_report', 'markdown_row',
           'flop_comparison', 'format_flop_comparison',
           'MARKDOWN_HEADER', 'MARKDOWN_FLOP_HEADER', 'METHODS', 'SIZES', 'LABELS_TOLERANCE',
           'random_image', 'class_names', 'PACKAGE_BUILT']

#: Minimum fraction of equal labels (``tests/test_official_parity.py``).
LABELS_TOLERANCE = 0.999
SIZES = ('tiny', 'full')
MARKDOWN_HEADER = ('| method | official s/img | ours s/img | ratio (wall) | ratio (CPU) | '
                   'labels equal | max diff | command |\n'
                   '|---|---|---|---|---|---|---|---|')
#: The header of :func:`markdown_row` with :func:`flop_comparison`'s columns (``--flops``).
MARKDOWN_FLOP_HEADER = (
    '| method | official s/img (CPU s) | ours s/img (CPU s) | ratio wall (CPU) | '
    'FLOPs official / ours (ratio) | rate official / ours, of the fp32 mm peak | '
    'labels equal | max diff | command |\n'
    '|---|---:|---:|---:|---|---|---:|---:|---|')

Output = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Pair:
    """Our model and the official one as callables on the same prepared input.

    Attributes:
        ours: ``ours()`` -> class scores (C, H, W) or (scores, labels (H, W)).
        official: the same for the official model.
        description: What ran (widths, classes, image size, mode), one line.
        extra: Anything else worth reporting (e.g. the state dict's tensor count).
        modules: The models the two callables run (for :func:`flop_comparison`).
    """
    ours: Callable[[], Output]
    official: Callable[[], Output]
    description: str = ''
    extra: Dict[str, object] = field(default_factory=dict)
    modules: Tuple[torch.nn.Module, ...] = ()


def _scores_labels(output: Output) -> Tuple[torch.Tensor, torch.Tensor]:
    if isinstance(output, (tuple, list)):
        scores, labels = output
    else:
        scores, labels = output, None
    scores = torch.as_tensor(scores).detach().float().cpu()
    if labels is None:
        if scores.dim() != 3:
            raise BenchmarkError(f'class scores must be (C, H, W) to derive labels, got shape '
                                 f'{tuple(scores.shape)}; return (scores, labels).')
        labels = scores.argmax(dim=0)
    return scores, torch.as_tensor(labels).detach().cpu()


def agreement(ours: Output, official: Output) -> Dict[str, float]:
    """Max absolute score difference and the fraction of equal labels.

    Args:
        ours: Our class scores (C, H, W), or (scores, labels).
        official: The official ones, same shapes.

    Returns:
        dict: ``max_diff`` (max |ours - official| over the scores) and
        ``labels_equal`` (fraction of pixels with the same label).
    """
    s1, l1 = _scores_labels(ours)
    s2, l2 = _scores_labels(official)
    if s1.shape != s2.shape or l1.shape != l2.shape:
        raise BenchmarkError(f'output shapes differ: ours scores {tuple(s1.shape)} labels '
                             f'{tuple(l1.shape)}, official scores {tuple(s2.shape)} labels '
                             f'{tuple(l2.shape)}; both models must predict at the same size.')
    return dict(max_diff=float((s1 - s2).abs().max()) if s1.numel() else 0.0,
                labels_equal=float((l1 == l2).float().mean()) if l1.numel() else 1.0)


def side_by_side(ours: Callable[[], Output], official: Callable[[], Output], repeat: int = 1,
                 warmup: int = 1, atol: float = 1e-4) -> Dict[str, object]:
    """Runs both alternately (which one goes first alternates too) and compares.

    Load from other processes then hits both alike. The outputs compared are
    those of the first call of each (a warm-up call when ``warmup`` >= 1,
    untimed).

    Args:
        ours, official: Callables returning class scores or (scores, labels).
        repeat: Timed calls of each (>= 1).
        warmup: Untimed calls of each before (>= 0).
        atol: Tolerance of ``max_diff``.

    Returns:
        dict: ``ours`` / ``official`` (:func:`summarize_times` of wall-clock
        seconds), ``ours_cpu`` / ``official_cpu`` (the same of process CPU
        seconds), ``ratio`` / ``cpu_ratio`` (medians, ours / official),
        ``max_diff``, ``labels_equal``, ``atol`` and ``ok`` (outputs agree).
    """
    if repeat < 1 or warmup < 0:
        raise BenchmarkError(f'repeat must be >= 1 and warmup >= 0, got repeat={repeat}, '
                             f'warmup={warmup}.')
    funcs = dict(ours=ours, official=official)
    wall = {k: [] for k in funcs}
    cpu = {k: [] for k in funcs}
    first = {}
    with torch.no_grad():
        for i in range(warmup + repeat):
            order = ('ours', 'official') if i % 2 == 0 else ('official', 'ours')
            for name in order:
                seconds, cpu_seconds, out = timed_call(funcs[name])
                first.setdefault(name, out)
                if i >= warmup:
                    wall[name].append(seconds)
                    cpu[name].append(cpu_seconds)
                del out
    result = agreement(first['ours'], first['official'])
    for name in funcs:
        result[name] = summarize_times(wall[name])
        result[name + '_cpu'] = summarize_times(cpu[name])
    result['ratio'] = result['ours']['median'] / result['official']['median']
    result['cpu_ratio'] = result['ours_cpu']['median'] / result['official_cpu']['median']
    result['atol'] = atol
    result['ok'] = result['max_diff'] <= atol and result['labels_equal'] >= LABELS_TOLERANCE
    return result


def format_report(method: str, result: Dict[str, object], description: str = '') -> str:
    """The result of :func:`side_by_side` as text."""
    runs = len(result['ours']['runs'])
    lines = [
        f'{method}: {description}' if description else method,
        f'median s/image over {runs} run(s): ours {result["ours"]["median"]:.3f}, official '
        f'{result["official"]["median"]:.3f}, ratio ours/official {result["ratio"]:.3f}',
        f'process CPU s/image: ours {result["ours_cpu"]["median"]:.3f}, official '
        f'{result["official_cpu"]["median"]:.3f}, ratio {result["cpu_ratio"]:.3f}',
        f'agreement: max |score diff| {result["max_diff"]:.2e} (tolerance {result["atol"]:g}), '
        f'labels equal {100 * result["labels_equal"]:.3f}% (tolerance '
        f'{100 * LABELS_TOLERANCE:g}%): {"OK" if result["ok"] else "FAILED"}',
    ]
    return '\n'.join(lines)


def flop_comparison(ours: Callable[[], Output], official: Callable[[], Output],
                    result: Dict[str, object], peak_gflops: Optional[float] = None,
                    modules: Sequence[torch.nn.Module] = ()) -> Dict[str, object]:
    """FLOPs of one call of each model and the rate each achieved against the matrix peak.

    Tells a ratio that is bound by the work done (both near the machine's
    fp32 matrix peak: only fewer FLOPs or lower precision can go faster)
    from one bound by everything else (issue 21, item 3). The peak is the
    fp32 ``torch.mm`` of the shape carrying most of our FLOPs, at the
    current thread count (:func:`mmovss.benchmarking.peak.matmul_peak`);
    the rates use the median process CPU time divided by the thread count,
    which other processes inflate least.

    Args:
        ours, official: The callables of :func:`side_by_side`.
        result: Its result (``ours_cpu`` / ``official_cpu`` medians).
        peak_gflops: The peak to use instead of measuring it.
        modules: The models the callables run (:attr:`Pair.modules`): their
            parameters stop requiring gradients during the count
            (:func:`mmovss.benchmarking.flops.parameters_without_grad`).

    Returns:
        dict: ``ours`` / ``official`` (:func:`mmovss.benchmarking.peak.efficiency`
        dicts plus ``by_op``, their FLOPs per operator), ``flop_ratio``
        (ours / official), ``peak_gflops`` and ``peak_shape`` ([M, K, N],
        None when given).
    """
    from .flops import count_flops
    from .peak import efficiency, matmul_peak
    # one module over both models, for count_flops' own parameters_without_grad
    models = torch.nn.ModuleList(modules) if modules else None
    counts = {}
    with torch.no_grad():
        for name, fn in (('ours', ours), ('official', official)):
            counts[name] = count_flops(fn, model=models)
    shape = None
    if peak_gflops is None:
        dominant = counts['ours']['dominant_matmul'] or counts['official']['dominant_matmul']
        if dominant is None:
            raise BenchmarkError('neither model ran a matrix product: pass peak_gflops.')
        shape = dominant['shape']
        peak_gflops = matmul_peak(shape, 'fp32')['gflops']
    threads = torch.get_num_threads()
    out = dict(peak_gflops=peak_gflops, peak_shape=shape)
    for name in ('ours', 'official'):
        seconds = result[name + '_cpu']['median'] / threads
        rate = efficiency(counts[name]['total'], seconds, peak_gflops)
        if rate is None:
            raise BenchmarkError(f'{name}: no CPU time was measured ({seconds} s); time '
                                 f'more calls (--repeat).')
        out[name] = dict(rate, by_op=counts[name]['by_op'])
    official_flops = counts['official']['total']
    out['flop_ratio'] = counts['ours']['total'] / official_flops if official_flops else None
    return out


def format_flop_comparison(flops: Dict[str, object]) -> str:
    """:func:`flop_comparison` as text, two lines."""
    shape = flops['peak_shape']
    where = f'mm {"x".join(map(str, shape))}, ' if shape else ''
    ratio = f'{flops["flop_ratio"]:.3f}' if flops['flop_ratio'] is not None else '-'
    rates = ', '.join(
        f'{name} {flops[name]["achieved_gflops"]:.1f} GFLOP/s '
        f'({100 * flops[name]["fraction"]:.0f}%)' for name in ('ours', 'official'))
    return (f'FLOPs per image: ours {flops["ours"]["gflop"]:.1f} G, official '
            f'{flops["official"]["gflop"]:.1f} G, ratio {ratio}\n'
            f'rate on CPU time per thread against the fp32 matrix peak '
            f'{flops["peak_gflops"]:.1f} GFLOP/s ({where}{torch.get_num_threads()} threads): '
            f'{rates}')


def markdown_row(method: str, result: Dict[str, object], command: str = '',
                 flops: Optional[Dict[str, object]] = None) -> str:
    """One row of :data:`MARKDOWN_HEADER`, or of :data:`MARKDOWN_FLOP_HEADER` with ``flops``.

    Args:
        method: The row's name.
        result: :func:`side_by_side`'s result.
        command: The command that reproduces the row.
        flops: :func:`flop_comparison`'s result: adds the FLOP counts and
            the rates against the fp32 matrix peak (the table of
            docs/benchmarks.md, "One thread, with FLOP counts").
    """
    labels = f'{100 * result["labels_equal"]:.3f}%'
    if flops is None:
        return (f'| {method} | {result["official"]["median"]:.3f} | '
                f'{result["ours"]["median"]:.3f} | {result["ratio"]:.2f} | '
                f'{result["cpu_ratio"]:.2f} | {labels} | {result["max_diff"]:.1e} | '
                f'`{command}` |')
    times = {name: f'{result[name]["median"]:.2f} ({result[name + "_cpu"]["median"]:.2f})'
             for name in ('official', 'ours')}
    ratio = f'{flops["flop_ratio"]:.3f}' if flops['flop_ratio'] is not None else '-'
    shape = flops['peak_shape']
    where = f' (mm {" x ".join(map(str, shape))})' if shape else ''
    rates = (f'{flops["official"]["achieved_gflops"]:.1f} / '
             f'{flops["ours"]["achieved_gflops"]:.1f} GFLOP/s: '
             f'{100 * flops["official"]["fraction"]:.0f}% / '
             f'{100 * flops["ours"]["fraction"]:.0f}% of {flops["peak_gflops"]:.1f}{where}')
    return (f'| {method} | {times["official"]} | {times["ours"]} | '
            f'{result["ratio"]:.2f} ({result["cpu_ratio"]:.2f}) | '
            f'{flops["official"]["gflop"]:.1f} G / {flops["ours"]["gflop"]:.1f} G ({ratio}) | '
            f'{rates} | {labels} | {result["max_diff"]:.1e} | `{command}` |')


def random_image(size: Sequence[int], seed: int) -> torch.Tensor:
    """A smooth random RGB image (3, H, W), integer values 0..255 as float32.

    Drawn at 1/8 resolution and upsampled (bicubic), like the parity
    generators' inputs, so that it has structure at several scales.
    """
    import torch.nn.functional as F
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise BenchmarkError(f'--image-size {h} {w}: use at least 8 x 8 pixels.')
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=gen) * 255
    image = F.interpolate(coarse, size=(h, w), mode='bicubic', align_corners=False)
    return image.clamp(0, 255).round()[0]


def _strict(model: torch.nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Loads strictly (a clear error naming the keys otherwise)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BenchmarkError(f'the converted official state dict does not fit our model: '
                             f'missing {sorted(missing)[:8]}, unexpected '
                             f'{sorted(unexpected)[:8]} (of {len(missing)} / '
                             f'{len(unexpected)}); the converter or the config is wrong.')


# ----------------------------------------------------------------- methods
def _catseg_pair(generator, args) -> Pair:
    """CAT-Seg (Cho et al., CVPR 2024): the released slide inference (``eval.sh``:
    ``TEST.SLIDING_WINDOW True``; 640 x 640, 384 windows at stride 256 plus the global
    view) of ``CATSeg.inference_sliding_window``, against our ``catseg_slide`` mode."""
    from mmovss.converters import catseg_official
    from mmovss.testing.official_parity.catseg import tiny_model_cfg

    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    classes = args.classes
    official, state, meta = generator.build_official(args, classes, args.size, sliding=True)
    ours = MODELS.build(tiny_model_cfg(meta, 'catseg_slide'))
    ours.test_cfg['return_logits'] = True
    _strict(ours, catseg_official.convert(state))
    ours.eval()
    ours.set_vocabulary(list(classes))
    image = random_image(args.image_size, args.seed + 2)
    h, w = image.shape[-2:]
    mean = torch.tensor(meta['clip_pixel_mean']).view(-1, 1, 1)
    std = torch.tensor(meta['clip_pixel_std']).view(-1, 1, 1)
    sample = SegDataSample(metainfo=dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                                         padding_size=[0, 0, 0, 0]))

    def run_ours():
        inputs = ((image - mean) / std)[None]
        result = ours.predict(inputs, [copy.deepcopy(sample)])[0]
        return result.seg_logits.data, result.pred_sem_seg.data[0]

    def run_official():
        out = official([dict(image=image, height=h, width=w)])[0]['sem_seg']
        return out, out.argmax(dim=0)

    width = meta['tiny']['vision_width']
    return Pair(run_ours, run_official,
                f'{args.size} (CLIP width {width}, {meta["tiny"]["vision_layers"]} blocks, '
                f'aggregator {meta["head"]["hidden_dims"]}), {len(classes)} classes, image '
                f'{h} x {w}, slide inference', dict(tensors=len(state)),
                modules=(ours, official))


def _lseg_pair(generator, args) -> Pair:
    """LSeg (Li et al., ICLR 2022): ``LSegNet.forward(x, labelset)`` of
    ``modules/models/lseg_net.py`` (whole image, as ``lseg_demo.ipynb`` runs it; the official
    forward encodes the labels' text in every call, in half precision) against our
    ``LSeg._forward`` (class embeddings cached by the warm-up call), on the same normalised
    image (``LSegModule.val_transform``: mean = std = 0.5)."""
    from mmovss.converters.lseg_official import convert
    from mmovss.testing.official_parity.lseg import tiny_model_cfg

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    h, w = args.image_size
    if h % 32 or w % 32:
        raise BenchmarkError(f'--image-size {h} {w}: LSeg needs multiples of 32 (e.g. 480 480).')
    labels = [name.split(',')[0].strip() for name in args.classes]  # one name per class
    official, state, meta = generator.build_official(args, labels, args.size)
    init_default_scope('mmseg')
    ours = MODELS.build(tiny_model_cfg(meta))
    _strict(ours, convert(state))
    ours.eval()
    x = (random_image(args.image_size, args.seed + 2)[None] / 255 - 0.5) / 0.5

    def run_ours():
        return ours._forward(x)[0]

    def run_official():
        return official(x, list(labels))[0]

    tiny = meta['tiny']
    return Pair(run_ours, run_official,
                f'{args.size} (ViT width {tiny["vit_width"]} x {tiny["vit_depth"]}, features '
                f'{tiny["features"]}, text width {tiny["clip_text_width"]}), {len(labels)} '
                f'classes, image {h} x {w}, whole image; official time includes its per-call '
                f'fp16 text encoding', dict(tensors=len(state)), modules=(ours, official))


def _zegformer_pair(generator, args) -> Pair:
    """ZegFormer (Ding et al., CVPR 2022): the released gzss evaluation
    (``zegformer_R101_bs32_60k_vit16_coco-stuff_gzss_eval.yaml``: every query's masked crop
    classified by CLIP, fused with the segment scores, calibration 0.1 on seen classes) of
    the official ``MaskFormer`` meta-architecture against our ``D2ResNet`` +
    ``ZegFormerHead``; every third class is unseen. Both use the official text features
    (computed once when the official model is built)."""
    from mmovss.converters.zegformer_official import convert, official_temperature
    from mmovss.models.text_encoders.class_embeddings import ClassEmbeddings
    from mmovss.testing.official_parity.zegformer import build_tiny_model
    from mmovss.vocab import Vocabulary

    h, w = args.image_size
    if h % 32 or w % 32:
        raise BenchmarkError(f'--image-size {h} {w}: ZegFormer runs here without padding; '
                             f'use multiples of 32 (e.g. 512 672).')
    classes = [name.split(',')[0].strip() for name in args.classes]
    unseen = classes[2::3]
    official, state, meta, inputs = generator.build_official_sized(args, classes, unseen,
                                                                   args.size)
    text = 'sem_seg_head.predictor.clip_model.'
    state = {k: v for k, v in state.items() if not (
        k.startswith(text) and not k.startswith(text + 'visual.')
        and not k.endswith('clip_model.logit_scale'))}  # the text tower (as the fixture)
    converted = convert(state)
    backbone, head = build_tiny_model(meta)
    for module, prefix in ((backbone, 'backbone.'), (head, 'decode_head.')):
        _strict(module, {k[len(prefix):]: v for k, v in converted.items()
                         if k.startswith(prefix)})
    head.temperature = official_temperature(state)
    vocab = Vocabulary.build(classes)
    index = torch.arange(len(classes))
    scale = state[text + 'logit_scale'].float().exp().reshape(())
    class_embeds = ClassEmbeddings(inputs['text_features'], index, vocab)
    region_embeds = ClassEmbeddings(inputs['text_features_clip'], index, vocab,
                                    logit_scale=scale)
    values = meta['values']
    image = random_image(args.image_size, args.seed + 2)
    mean = torch.tensor(values['pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(values['pixel_std']).view(1, 3, 1, 1)

    def run_ours():
        x = image[None]
        feats = backbone((x - mean) / std)
        return head(list(feats) + [x], class_embeds, region_embeds)[0]

    def run_official():
        with generator.half_as_noop():
            return official([dict(image=image, height=h, width=w)])[0]['sem_seg']

    tiny = meta['tiny']
    return Pair(run_ours, run_official,
                f'{args.size} (R{meta["depth"]} stem {tiny["stem"]}, {tiny["queries"]} queries, '
                f'{tiny["dec_layers"]} decoder layers of {tiny["hidden"]}, CLIP image tower '
                f'width {tiny["clip_width"]} x {tiny["clip_layers"]}), {len(classes)} classes '
                f'({len(unseen)} unseen), image {h} x {w}', dict(tensors=len(state)),
                modules=(backbone, head, official))


def _fcclip_pair(generator, args) -> Pair:
    """FC-CLIP (Yu et al., NeurIPS 2023): ``FCCLIP.forward`` of the official
    ``fcclip/fcclip.py`` in semantic mode with ``ENSEMBLE_ON_VALID_MASK`` False (the released
    ConvNeXt-L setting), masks upsampled before the ensemble, against our
    ``FCCLIPEncoderDecoder.predict`` (data preprocessing included on both sides); every other
    class is in the training vocabulary."""
    import numpy as np

    from mmovss.testing.official_parity.fcclip import _build, _predict

    classes = [name.split(',')[0].strip() for name in args.classes]
    train = classes[::2]
    official, state, meta = generator.build_official(args, train, classes, args.size)
    official.ensemble_on_valid_mask = False
    official.sem_seg_postprocess_before_inference = False
    ours = _build(meta, state, gated=False)
    image = random_image(args.image_size, args.seed + 2)
    h, w = image.shape[-2:]
    image_rgb = image.to(torch.uint8).numpy()

    def run_ours():
        result = _predict(ours, image_rgb)[1]
        return result.seg_logits.data, result.pred_sem_seg.data[0]

    def run_official():
        out = official([dict(image=torch.from_numpy(np.ascontiguousarray(image_rgb)).float(),
                             height=h, width=w)])[0]['sem_seg']
        return out, out.argmax(dim=0)

    sizes = meta['sizes']
    return Pair(run_ours, run_official,
                f'{args.size} (ConvNeXt stages {sizes["stage_channels"]}, {sizes["queries"]} '
                f'queries, {sizes["dec_layers"]} decoder layers, {sizes["enc_layers"]} encoder '
                f'layers), {len(classes)} classes ({len(train)} seen), image {h} x {w}',
                dict(tensors=len(state)), modules=(ours, official))


def _san_official_pair(generator, args) -> Pair:
    """SAN (Xu et al., CVPR 2023) as released (github.com/MendelXu/SAN): ``SAN.forward`` of
    ``san/model/san.py`` built from ``configs/san_clip_vit_large_res4_coco.yaml``
    (:data:`~mmovss.benchmarking.official_builders.SAN_FULL`: CLIP ViT-L/14-336 at 0.7x input,
    side adapter ``vit_w240n6d8_patch16``, 100 queries; ``size`` 'tiny': the parity fixture's
    :data:`~mmovss.testing.official_parity.san_official.TINY`), against our
    ``MaskClassificationEncoderDecoder.predict`` (``configs/san/san-official_*`` options;
    data preprocessing included on both sides). The generator is not needed (the builders
    are :mod:`mmovss.benchmarking.official_builders`)."""
    from mmovss.benchmarking import official_builders as ob
    from mmovss.converters.san_official import convert
    from mmovss.testing.official_parity.san_official import TINY, tiny_config

    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    sizes = ob.SAN_FULL if args.size == 'full' else TINY
    classes = [name.split(',')[0].strip() for name in args.classes]
    san_module, add_san_config = ob.import_san(args.official_repo, args.detectron2)
    vit_name = ob.register_san_side_vit(sizes['side_adapter'])
    cfg = ob.san_cfg(args.official_repo, add_san_config, vit_name, sizes, len(classes))
    san_module.open_clip.create_model_and_transforms = \
        lambda *a, **k: ob.san_open_clip(sizes['clip_cfg'])
    official = san_module.SAN(cfg).eval()
    ob.randomise_san(official, args.seed)
    state = official.state_dict()
    ours_cfg = tiny_config(sizes, classes, cfg.MODEL.SAN.CLIP_RESOLUTION,
                           cfg.MODEL.SAN.SIZE_DIVISIBILITY)
    ours_cfg['data_preprocessor'] = MODELS.build(ours_cfg['data_preprocessor'])
    ours = MODELS.build(ours_cfg)
    _strict(ours, convert(state))
    ours.eval()
    image = random_image(args.image_size, args.seed + 2).to(torch.uint8)
    h, w = image.shape[-2:]

    def run_ours():
        sample = SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
        data = ours.data_preprocessor(dict(inputs=[image.flip(0)], data_samples=[sample]),
                                      False)  # RGB -> BGR: the preprocessor flips back
        result = ours.predict(data['inputs'], data['data_samples'])[0]
        return result.seg_logits.data, result.pred_sem_seg.data[0]

    def run_official():
        out = official([dict(image=image.float(), height=h, width=w,
                             vocabulary=list(classes))])[0]['sem_seg']
        return out, out.argmax(dim=0)

    vision = sizes['clip_cfg']['vision_cfg']
    side = sizes['side_adapter']
    return Pair(run_ours, run_official,
                f'{args.size} (CLIP ViT width {vision["width"]} x {vision["layers"]}, patch '
                f'{vision["patch_size"]}, {cfg.MODEL.SAN.CLIP_RESOLUTION}x input; side adapter '
                f'width {side["embed_dims"]} x {side["num_layers"]}, {side["num_queries"]} '
                f'queries), {len(classes)} classes, image {h} x {w}', dict(tensors=len(state)),
                modules=(ours, official))


def _ovseg_pair(generator, args) -> Pair:
    """OVSeg (Liang et al., CVPR 2023) as released (github.com/facebookresearch/ov-seg):
    ``OVSeg.forward`` of ``open_vocab_seg/ovseg_model.py`` built from
    ``configs/ovseg_R101c_vitB_bs32_120k.yaml`` (DeepLab R101c, MaskFormer head of 100
    queries, the clone's mask-prompted CLIP ViT-B/16 classifying every non-empty proposal's
    crop, ensemble weight 0.7; ``size`` 'tiny': the generator's ``TINY``), against our
    ``TwoStageEncoderDecoder.encode_decode`` (``configs/ovseg/ovseg-official_*`` options),
    normalisation included on both sides. Builders:
    :mod:`mmovss.benchmarking.official_builders`; ``generator`` (the parity generator) gives
    the tiny sizes."""
    from mmovss.benchmarking import official_builders as ob
    from mmovss.converters.ovseg_official import convert
    from mmovss.testing.official_parity.ovseg import tiny_model_cfg

    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    h, w = args.image_size
    if h % 32 or w % 32:
        raise BenchmarkError(f'--image-size {h} {w}: OVSeg runs here without padding; use '
                             f'multiples of 32 (e.g. 512 672).')
    classes = [name.split(',')[0].strip() for name in args.classes]
    clip, clip_model = ob.import_ovseg(args.official_repo, args.detectron2)
    import open_vocab_seg.modeling.clip_adapter.utils as adapter_utils
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model
    full = args.size == 'full'
    spec = ob.OVSEG_RELEASED_CLIP['r101c'] if full else generator.TINY['clip']
    head_width = None if full else 8
    clip.load = adapter_utils.clip.load = ob.ovseg_clip_loader(clip_model, spec, head_width)
    cfg = ob.ovseg_cfg(args.official_repo, 'r101c', None if full else generator.TINY)
    dataset = f'ovseg_timing_{abs(hash(tuple(classes)))}'
    MetadataCatalog.get(dataset).set(stuff_classes=list(classes))
    official = build_model(cfg).eval()
    ob.randomise_ovseg(official, args.seed)
    state = official.state_dict()
    c = cfg.MODEL
    meta = dict(
        class_names=classes, backbone='r101c',
        backbone_cfg={k: c.RESNETS[k] for k in ('DEPTH', 'STEM_OUT_CHANNELS',
                                                  'RES2_OUT_CHANNELS', 'WIDTH_PER_GROUP')},
        head_cfg={k: c.SEM_SEG_HEAD[k] for k in ('EMBEDDING_DIM', 'EMBED_HIDDEN_DIM',
                                                   'CONVS_DIM', 'MASK_DIM')},
        mask_former_cfg={k: c.MASK_FORMER[k] for k in ('HIDDEN_DIM', 'NUM_OBJECT_QUERIES',
                                                         'NHEADS', 'DIM_FEEDFORWARD',
                                                         'DEC_LAYERS')},
        clip_cfg=spec, clip_vision_head_width=head_width or 64,
        ensemble_weight=c.CLIP_ADAPTER.CLIP_ENSEMBLE_WEIGHT, mask_thr=c.CLIP_ADAPTER.MASK_THR,
        mask_prompt_depth=c.CLIP_ADAPTER.MASK_PROMPT_DEPTH, mask_fill=c.CLIP_ADAPTER.MASK_FILL,
        text_templates=c.CLIP_ADAPTER.TEXT_TEMPLATES, pixel_mean=list(c.PIXEL_MEAN),
        pixel_std=list(c.PIXEL_STD))
    if not c.CLIP_ADAPTER.MASK_PROMPT_FWD:
        raise BenchmarkError('the OVSeg config does not use mask prompts in the forward '
                             '(MASK_PROMPT_FWD False); our options follow the released one.')
    init_default_scope('mmseg')
    ours = MODELS.build(tiny_model_cfg(meta)).eval()
    _strict(ours, convert(state))
    image = random_image(args.image_size, args.seed + 2)
    mean = torch.tensor(meta['pixel_mean']).view(1, 3, 1, 1)
    std = torch.tensor(meta['pixel_std']).view(1, 3, 1, 1)
    extra = dict(tensors=len(state), crops=None)

    def count_crops(_module, _inputs, output):
        extra['crops'] = int(output[1].sum())
    ours.decode_head.region_classifier.register_forward_hook(count_crops)
    shape = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w))

    def run_ours():
        return ours.encode_decode((image[None] - mean) / std, [dict(shape)])[0]

    def run_official():
        return official([dict(image=image, height=h, width=w,
                              meta=dict(dataset_name=dataset))])[0]['sem_seg']

    mf = meta['mask_former_cfg']
    return Pair(run_ours, run_official,
                f'{args.size} (ResNet-{meta["backbone_cfg"]["DEPTH"]}c, {mf["NUM_OBJECT_QUERIES"]} '
                f'queries, {mf["DEC_LAYERS"]} decoder layers of {mf["HIDDEN_DIM"]}, CLIP ViT width '
                f'{spec["vision_width"]} x {spec["vision_layers"]} with mask prompts), '
                f'{len(classes)} classes, image {h} x {w}', extra, modules=(ours, official))


#: method -> ``pair(generator, args)``; ``args``: the tool's arguments plus ``classes``.
METHODS: Dict[str, Callable] = {
    'catseg': _catseg_pair,
    'fcclip': _fcclip_pair,
    'lseg': _lseg_pair,
    'ovseg': _ovseg_pair,
    'san_official': _san_official_pair,
    'zegformer': _zegformer_pair,
}

#: Methods whose official model is built by :mod:`mmovss.benchmarking.official_builders`
#: (their parity generator is loaded only for its tiny sizes, if at all).
PACKAGE_BUILT = ('ovseg', 'san_official')


def class_names(count: int) -> list:
    """The first ``count`` ADE20K-150 class names (synonyms kept), as the benchmark uses."""
    from mmovss.vocab import load_benchmark_classes
    names = list(load_benchmark_classes('ade20k_150'))
    if not 1 <= count <= len(names):
        raise BenchmarkError(f'--classes {count}: use 1 to {len(names)}.')
    return names[:count]
