"""Speed and memory of a segmentor config: image latency and text cost.

Builds the model of a config as ``tools/test.py`` does and times
``model.test_step`` on one packed image of the config's test pipeline, as the
test loop runs it: data preprocessing, whole or sliding-window inference and
post-processing to the original image size. Measures:

* latency per image over ``repeat`` runs after ``warmup`` untimed ones
  (:func:`~.timing.timed_runs`, :func:`~.timing.summarize_times`), images
  per second, CPU time per image and the load average around the runs;
* peak memory during inference: on CPU the process's peak resident set
  (``VmHWM``, reset before the first inference) and the same above the
  built model; on GPU ``torch.cuda.max_memory_allocated``;
* the text-encoding cost of the vocabulary (:func:`~.text.measure_text`);
* efficiency (unless ``efficiency_pass=False``): the FLOPs of one predict
  and of its image encoder, counted in a separate untimed pass
  (:func:`~.flops.count_flops`), the matrix peak of the machine on the
  model's dominant shape in the run's precision (:func:`~.peak.matmul_peaks`),
  and the achieved FLOP/s (FLOPs / median latency) with its fraction of the
  peak, for the encoder (timed by hooks in the timed runs) and the predict.

On CPU, ``dtype='bf16'`` is checked first (before the text encoding): when
bf16 products of :data:`~.peak.DEFAULT_SHAPE` are slower than fp32 (a CPU
without AMX / AVX512-BF16) the run falls back to fp32 with a note, or is
refused with ``strict_dtype``.
"""
import copy
import gc
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import List, Optional, Sequence

import torch

from . import peak as peak_module
from .errors import BenchmarkError
from .flops import EncoderTimer, count_flops, encoder_modules
from .inputs import DEFAULT_IMAGE_SIZE, build_test_pipeline, make_image
from .memory import current_rss_mb, huge_page_allocations, peak_rss_mb, reset_peak_rss
from .model import build_model, choose_vocabulary, load_benchmark_config, precision_context
from .peak import DEFAULT_SHAPE, efficiency, matmul_peaks
from .text import measure_text
from .timing import check_device, device_name, is_contended, summarize_times, timed_runs
from .vocabulary import load_vocabulary, synthetic_vocabulary

# The repository root of a source checkout (configs are reported relative
# to it).
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def progress(message: str) -> None:
    """A progress line on stderr (the report goes to stdout)."""
    print(f'[benchmark] {message}', file=sys.stderr, flush=True)


def _config_and_method(config: str):
    """The config path (repository-relative where possible) and method."""
    if osp.abspath(config).startswith(ROOT):
        config = osp.relpath(config, ROOT)
    parts = config.replace('\\', '/').split('/')
    method = parts[1] if len(parts) > 2 and parts[0] == 'configs' \
        else osp.basename(osp.dirname(config))
    return config, method


def benchmark_segmentor(config: str,
                        checkpoint: Optional[str] = None,
                        config_weights: bool = False,
                        shape: Optional[Sequence[int]] = None,
                        image: Optional[str] = None,
                        image_size: Optional[Sequence[int]] = None,
                        vocabulary: Optional[str] = None,
                        num_classes: Optional[int] = None,
                        device: str = 'cpu',
                        dtype: Optional[str] = None,
                        repeat: int = 5,
                        warmup: int = 1,
                        threads: Optional[int] = None,
                        seed: int = 0,
                        cfg_options: Optional[dict] = None,
                        benchmark: Optional[str] = None,
                        command: str = '',
                        efficiency_pass: bool = True,
                        strict_dtype: bool = False) -> dict:
    """Builds the model of a config, measures it and returns the results.

    Args:
        config: Config file.
        checkpoint: Trained checkpoint, loaded strictly (default: random
            weights, or the config's with ``config_weights``).
        config_weights: Keep the config's weight sources (may download).
        shape: (H, W) network input: the image is made this size and the
            pipeline's resize steps are skipped.
        image: Image file (default: uniform noise).
        image_size: (H, W) of the image before the pipeline (default
            :data:`DEFAULT_IMAGE_SIZE` for noise, the file's size).
        vocabulary: A benchmark key, dataset type or class file
            (:func:`~.vocabulary.load_vocabulary`).
        num_classes: That many synthetic class names instead.
        device: ``'cpu'`` or ``'cuda[:N]'``.
        dtype: ``'fp32'``, ``'bf16'``, ``'fp16'`` (default: the config's).
        repeat: Timed runs.
        warmup: Untimed runs first.
        threads: torch CPU threads (default: torch's).
        seed: Seed of the random weights and of the noise image.
        cfg_options: Dotted-key overrides of the config (applied after
            ``benchmark``, as in ``tools/test.py``).
        benchmark: A key of :data:`mmovss.protocols.BENCHMARK_KEYS`: the
            config is switched to that benchmark with the method's protocol
            (:func:`mmovss.protocols.apply_benchmark`), e.g. its vocabulary
            and test pipeline.
        command: The command line that reproduces the run (reported).
        efficiency_pass: Count FLOPs and measure the matrix peak
            (``--no-efficiency`` turns it off).
        strict_dtype: Refuse, rather than fall back to fp32, a bf16 run on a
            CPU whose bf16 products are slower than fp32.

    Returns:
        dict: The results (see ``tools/analysis_tools/benchmark.py``).

    Raises:
        BenchmarkError: An impossible request (missing config, unknown
            vocabulary, fp16 on CPU, CUDA absent, foreign checkpoint, bf16
            slower than fp32 with ``strict_dtype`` ...).
    """
    import mmovss  # noqa: F401  (compat + registration)

    from mmengine.dataset import pseudo_collate
    _check_sizes_and_counts(shape, image_size, threads, repeat, warmup)
    device = check_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    precision_context(None, dtype, device)  # fp16 on CPU: clear error
    if vocabulary is not None:
        load_vocabulary(vocabulary)  # fail before the (slow) build
    if num_classes is not None:
        synthetic_vocabulary(num_classes)
    cfg = load_benchmark_config(config, None if benchmark else cfg_options)
    if benchmark:  # the benchmark's protocol first, cfg_options over it
        from mmovss.protocols import apply_benchmark
        try:
            cfg = apply_benchmark(cfg, benchmark)
        except ValueError as err:
            raise BenchmarkError(f'--benchmark {benchmark}: {err}') from None
        if cfg_options:
            from mmovss.runtime import merge_cfg_options
            merge_cfg_options(cfg, cfg_options)  # warns about likely misspelt keys
    cfg.load_from = None
    notes: List[str] = []
    weights = 'config' if config_weights else 'random'

    gc.collect()
    rss_start = current_rss_mb()
    progress(f'building {config} ({weights} weights)')
    start = time.perf_counter()
    model = build_model(cfg, weights, checkpoint, device, notes, seed)
    build_s = time.perf_counter() - start
    autocast, precision = precision_context(model, dtype, device)
    requested = precision.split()[0]
    dtype_check = _check_cpu_bf16(requested, device, strict_dtype, notes)
    if dtype_check and not dtype_check['kept']:
        autocast, precision = precision_context(model, 'fp32', device)
    vocab = choose_vocabulary(model, cfg, vocabulary, num_classes)
    gc.collect()
    rss_model = current_rss_mb()

    with tempfile.TemporaryDirectory(prefix='mmovss_bench_text_') as cache:
        progress(f'built in {build_s:.1f} s; text encoding of '
                 f'{vocab.num_names} names, cold and warm')
        text = measure_text(model, cache, device, autocast)

        pipeline = build_test_pipeline(cfg, drop_resize=shape is not None)
        size = shape or image_size or \
            (None if image else DEFAULT_IMAGE_SIZE)
        array = make_image(image, size, seed)
        packed = pipeline(dict(img=array))
        runs = [pseudo_collate([copy.deepcopy(packed)])
                for _ in range(warmup + repeat)]
        with torch.no_grad():
            net_shape = tuple(model.data_preprocessor(
                copy.deepcopy(runs[0]), False)['inputs'].shape[-2:])

        count, peak = _count_and_peak(model, packed, autocast, device,
                                      precision, notes) \
            if efficiency_pass else (None, None)

        sam_masks = []
        hooks = []
        for module in model.modules():
            if type(module).__name__ == 'SAMMaskGenerator':
                hooks.append(module.register_forward_hook(
                    lambda m, i, o: sam_masks.append(int(o[0].shape[0]))))
        outputs = []
        done = []
        encoder_times, encoder_cpu_times = [], []
        timer = EncoderTimer(encoder_modules(model), device) \
            if count else None

        def infer():
            data = runs.pop()
            start = time.perf_counter()
            encoder_start = timer.seconds if timer else 0.0
            encoder_cpu_start = timer.cpu_seconds if timer else 0.0
            with torch.no_grad(), autocast():
                outputs.append(model.test_step(data))
            if timer:
                encoder_times.append(timer.seconds - encoder_start)
                encoder_cpu_times.append(timer.cpu_seconds - encoder_cpu_start)
            del outputs[:-1]
            progress(f'image {len(done) + 1}/{warmup + repeat} (warm-up: '
                     f'{warmup}): {time.perf_counter() - start:.2f} s')
            done.append(1)

        progress(f'text cold {text["cold_s"]:.2f} s; image {array.shape[0]}'
                 f'x{array.shape[1]} -> network input {net_shape[0]}x'
                 f'{net_shape[1]}')

        cuda = torch.device(device).type == 'cuda'
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            gpu_model_mb = torch.cuda.memory_allocated(device) / 2**20
        gc.collect()
        rss_before = current_rss_mb()
        rss_reset = reset_peak_rss()
        load_before = os.getloadavg()[0]
        cpu_times = []
        paired_peaks = []  # the peak again right after each timed run

        def peak_beside():
            paired_peaks.append(peak_module.matmul_peak(
                peak['shape'], peak['dtype'], device, repeat=2))

        times = timed_runs(infer, repeat, warmup, device, cpu_times,
                           after_each=peak_beside if count else None)
        load_after = os.getloadavg()[0]
        peak_rss = peak_rss_mb()
        for hook in hooks:
            hook.remove()
        if timer:
            timer.remove()

    pred = outputs[-1][0].pred_sem_seg.data
    memory = dict(rss_start_mb=rss_start, rss_model_mb=rss_model,
                  rss_before_inference_mb=rss_before, peak_rss_mb=peak_rss,
                  peak_rss_above_model_mb=(peak_rss - rss_model
                                           if rss_model else None),
                  peak_rss_reset=rss_reset,
                  # measured after the runs: do large CPU tensors get huge pages?
                  cpu_huge_pages=huge_page_allocations())
    if cuda:
        memory.update(
            gpu_model_mb=gpu_model_mb,
            gpu_peak_mb=torch.cuda.max_memory_allocated(device) / 2**20)
    if sam_masks:
        notes.append(f'SAM masks per image: {min(sam_masks)}-'
                     f'{max(sam_masks)}')
    if not rss_reset:
        notes.append('peak RSS is the lifetime peak of the process '
                     '(/proc/self/clear_refs unavailable)')
    config, method = _config_and_method(config)
    latency = summarize_times(times)
    return dict(
        config=config,
        method=method,
        benchmark=benchmark,
        command=command,
        model=type(model).__name__,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        weights=('checkpoint' if checkpoint else weights),
        device=device,
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        dtype=precision.split()[0],
        precision=precision,
        vocabulary=dict(source=vocab.source if hasattr(
            vocab, 'source') else None,
            num_classes=vocab.num_classes,
            num_names=vocab.num_names),
        image=dict(source=image or 'noise',
                   ori_shape=list(array.shape[:2]),
                   net_shape=list(net_shape),
                   pred_shape=list(pred.shape[-2:])),
        test_mode=dict(model.test_cfg).get('mode', 'whole'),
        repeat=repeat,
        warmup=warmup,
        build_s=build_s,
        latency_s=latency,
        images_per_s=latency['per_s'],
        cpu_s_per_image=statistics.median(cpu_times),
        load_average=[load_before, load_after],
        contended=is_contended(max(load_before, load_after),
                               torch.get_num_threads()),
        memory=memory,
        text=text,
        efficiency=_efficiency_result(count, peak, times,
                                      encoder_times[warmup:], cpu_times,
                                      encoder_cpu_times[warmup:],
                                      paired_peaks),
        dtype_requested=requested,
        dtype_check=dtype_check,
        notes=notes)


def _check_sizes_and_counts(shape, image_size, threads, repeat, warmup) -> None:
    """Refuses sizes and counts that cannot be run or would be ignored.

    Raises:
        BenchmarkError: ``--threads`` below 1 (torch's error, after the
            build), a size that is not two positive numbers, ``--shape`` with
            ``--image-size`` (the image is made ``--shape`` large: the other
            size was silently ignored), ``--repeat`` below 1, ``--warmup``
            below 0.
    """
    if threads is not None and threads < 1:
        raise BenchmarkError(f"--threads must be >= 1, got {threads} (leave it "
                             f"out for torch's default).")
    for option, size in (('--shape', shape), ('--image-size', image_size)):
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise BenchmarkError(f'{option} must be two sizes H W >= 1, got '
                                 f'{" ".join(map(str, size))}.')
    if shape is not None and image_size is not None:
        raise BenchmarkError(
            '--shape H W makes the image H x W and skips the resizing of the '
            'test pipeline, so --image-size would be ignored; give --shape for '
            'the network input, or --image-size for the image before the '
            "config's pipeline.")
    if repeat < 1 or warmup < 0:
        raise BenchmarkError('--repeat must be >= 1 and --warmup >= 0.')


def _check_cpu_bf16(dtype: str, device: str, strict_dtype: bool,
                    notes: List[str]) -> Optional[dict]:
    """Whether a bf16 run on CPU keeps bf16 (None: not bf16 on CPU).

    bf16 and fp32 products of :data:`~.peak.DEFAULT_SHAPE` are timed in turn
    (:func:`~.peak.matmul_peaks`); bf16 slower (a CPU without a bf16 matrix
    engine) means fp32 (``kept`` False, a note) or, with ``strict_dtype``, a
    :class:`BenchmarkError`. Runs before the text encoding and the image
    runs, so that both run in the precision kept.
    """
    if torch.device(device).type != 'cpu' or dtype != 'bf16':
        return None
    progress(f'bf16 check: bf16/fp32 mm {"x".join(map(str, DEFAULT_SHAPE))}')
    # the models' own check (measured once per process; cast-once bf16
    # segmentors ask it again before their first forward)
    from mmovss.models.utils.low_precision import cpu_bf16_check
    measured = cpu_bf16_check(refresh=True)
    bf16, fp32 = measured['bf16_gflops'], measured['fp32_gflops']
    kept = measured['kept']
    if not kept:
        message = measured['message']
        if strict_dtype:
            raise BenchmarkError(
                f'--dtype bf16 refused (--strict-dtype): {message}. Run with '
                f'--dtype fp32, or without --strict-dtype to fall back to '
                f'fp32.')
        notes.append(f'{message}: fell back to fp32 (--strict-dtype refuses '
                     f'instead)')
        progress(notes[-1])
    return dict(shape=list(DEFAULT_SHAPE), bf16_gflops=bf16,
                fp32_gflops=fp32, kept=kept)


def _count_and_peak(model, packed, autocast, device, precision,
                    notes: List[str]):
    """The untimed counting pass and the matrix peak of its dominant shape.

    Returns:
        tuple: The FLOP count (:func:`~.flops.count_flops`) and the peak
        (:func:`~.peak.matmul_peaks` in the run's precision).
    """
    from mmengine.dataset import pseudo_collate
    progress('counting FLOPs (one untimed predict)')
    data = pseudo_collate([copy.deepcopy(packed)])
    with torch.no_grad(), autocast():
        count = count_flops(lambda: model.test_step(data),
                            encoder_modules(model), model)
    dominant = count['dominant_matmul']
    shape = dominant['shape'] if dominant else list(DEFAULT_SHAPE)
    if not dominant:
        notes.append(f'no matrix product counted: peak measured on mm '
                     f'{"x".join(map(str, shape))}')
    dtype = precision.split()[0]
    progress(f'matrix peak: {dtype} mm {"x".join(map(str, shape))}')
    return count, matmul_peaks(shape, (dtype,), device)[dtype]


def _efficiency_result(count, peak, times, encoder_times, cpu_times,
                       encoder_cpu_times, paired_peaks=()):
    """The ``efficiency`` field of the results (None without counting).

    ``predict`` and ``encoder`` use wall-clock seconds against the wall-clock
    peak; ``predict_cpu`` and ``encoder_cpu`` use the process's CPU time
    against the peak on CPU time (``peak['cpu_gflops']``): with one thread
    on a machine shared with other jobs these stay near what an idle core
    gives, while the wall-clock fractions fall with the share of the core
    the run got.

    ``paired`` (with ``paired_peaks``, the peak measured again right after
    each timed run): per run, its achieved FLOP/s over the peak measured
    beside it, and the median of those fractions, on wall-clock and CPU
    time. On a machine whose matrix throughput drifts (a virtual machine
    sharing its cores' matrix units: the bf16 peak of one Intel AMX VM
    moved between 480 and 1230 GFLOP/s within minutes, idle) the best-of
    peak and the median latency may come from different phases; the paired
    fractions compare each run with its own phase. ``peaks`` gives the
    paired peaks' range.
    """
    if not count:
        return None
    gflops = peak['gflops']

    def median(values):
        return statistics.median(values) if values else None

    paired = None
    if paired_peaks and len(paired_peaks) == len(times):
        def fractions(flops, seconds, key):
            return median([efficiency(flops, s, p[key])['fraction']
                           for s, p in zip(seconds, paired_peaks)
                           if s and p.get(key)]) if flops else None
        paired = dict(
            peaks=dict(min=min(p['gflops'] for p in paired_peaks),
                       max=max(p['gflops'] for p in paired_peaks),
                       runs=len(paired_peaks)),
            predict=fractions(count['total'], times, 'gflops'),
            encoder=fractions(count['encoder'], encoder_times, 'gflops'),
            predict_cpu=fractions(count['total'], cpu_times, 'cpu_gflops'),
            encoder_cpu=fractions(count['encoder'], encoder_cpu_times,
                                  'cpu_gflops'))

    encoder = efficiency(count['encoder'], median(encoder_times), gflops)
    cpu_peak = peak.get('cpu_gflops')
    cpu = dict(predict_cpu=None, encoder_cpu=None)
    if cpu_peak:
        cpu = dict(
            predict_cpu=efficiency(count['total'], median(cpu_times),
                                   cpu_peak),
            encoder_cpu=efficiency(count['encoder'],
                                   median(encoder_cpu_times), cpu_peak))
    return dict(
        peak=peak,
        predict=efficiency(count['total'], median(times), gflops),
        encoder=encoder,
        **cpu,
        paired=paired,
        encoder_calls=count['encoder_calls'],
        dominant_matmul=count['dominant_matmul'],
        by_op=count['by_op'])
