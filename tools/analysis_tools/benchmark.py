"""Speed and memory of a segmentor config: image latency and text-encoding cost.

Builds the model of CONFIG as ``tools/test.py`` does (``--cfg-options``
applied, the plugin registered) and times ``model.test_step`` on one packed
image of the config's test pipeline, as the test loop runs it: data
preprocessing, whole or sliding-window inference, and post-processing to the
original image size. It prints, per configuration:

* median and p90 latency per image (seconds) over ``--repeat`` runs after
  ``--warmup`` untimed ones, and images per second (``repeat / total``);
* peak memory during inference: on CPU the process's peak resident set
  (``VmHWM``, reset before the first inference through
  ``/proc/self/clear_refs``) and the same minus the RSS after the model was
  built ("above model"); on GPU ``torch.cuda.max_memory_allocated``;
* the text-encoding cost of the vocabulary, separately from the image cost:
  *cold* (empty in-memory and on-disk caches, a temporary cache directory),
  *warm from disk* (the in-memory cache cleared: what a new process pays) and
  *warm* (served from memory: what every image forward pays, also included in
  the image latency).

Weights. Without ``--checkpoint`` every weight source of the config is
replaced by random initialisation (nothing is downloaded or read): open_clip
``pretrained`` tags or files, timm ``pretrained=True`` (ProxyCLIP's DINO),
mmengine ``init_cfg=dict(type='Pretrained', ...)`` (ResNet-101 of the
two-stage methods) and ``load_from``; SAM + CLIP gets a randomly initialised
SAM of the config's ``model_type`` at full size (its masks are meaningless,
so the number of masks, which drives the region-classification cost, is
printed). The architecture is unchanged, so the timings are those of the real
model. ``--checkpoint`` loads a trained checkpoint on top (strictly, as
``tools/test.py``); ``--config-weights`` keeps the config's own weight
sources instead (downloads where the config names a tag).

Examples::

    python tools/analysis_tools/benchmark.py \\
        configs/naclip/naclip_vit-b16_ade20k_150.py --repeat 3 --warmup 1
    python tools/analysis_tools/benchmark.py \\
        configs/san/san_vit-b16_60k_coco-stuff171-640x640_eval-ade20k_150.py \\
        --shape 640 640 --vocabulary ade20k_847 --json san.json --markdown
    python tools/analysis_tools/benchmark.py CONFIG --device cuda --dtype bf16

Helpers shared with ``benchmark_text_encoder.py``, ``benchmark_slide.py`` and
``benchmark_san.py`` (timing, statistics, vocabularies, random weights) live
here.
"""
import argparse
import contextlib
import copy
import gc
import json
import os
import os.path as osp
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16,
          'fp16': torch.float16}
DEFAULT_IMAGE_SIZE = (512, 683)  # H, W: a typical ADE20K validation image


class BenchmarkError(ValueError):
    """A benchmark request that cannot be run (the message says why)."""


def progress(message: str) -> None:
    """A progress line on stderr (the report goes to stdout)."""
    print(f'[benchmark] {message}', file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Timing and statistics (shared with the other benchmark tools)


def synchronize(device) -> None:
    """Waits for queued GPU work (no-op on CPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def timed_runs(fn: Callable[[], object], repeat: int, warmup: int = 0,
               device='cpu', cpu_times: Optional[list] = None) -> List[float]:
    """Runs ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    Args:
        fn: The work to time (its result is discarded).
        repeat: Timed runs (>= 1).
        warmup: Untimed runs before (>= 0).
        device: The device ``fn`` runs on; CUDA is synchronised around each
            timed run.
        cpu_times (list, optional): Receives the CPU time (user + system,
            all threads of this process) of each timed run, which other
            processes competing for the cores do not inflate as much as
            wall-clock time.

    Returns:
        list[float]: Wall-clock seconds of each timed run.
    """
    if repeat < 1 or warmup < 0:
        raise BenchmarkError(f'repeat must be >= 1 and warmup >= 0, got '
                             f'repeat={repeat}, warmup={warmup}.')
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        synchronize(device)
        cpu_start = time.process_time()
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu_start)
    return times


def summarize_times(times: Sequence[float]) -> Dict[str, float]:
    """Median, p90 (linear interpolation), mean, min, max and throughput.

    Args:
        times: Seconds per run (non-empty).

    Returns:
        dict: ``median``, ``p90``, ``mean``, ``min``, ``max`` (seconds),
        ``per_s`` (runs per second, ``len(times) / sum(times)``) and
        ``runs`` (the times themselves).
    """
    if not times:
        raise BenchmarkError('no timed runs to summarise.')
    values = [float(t) for t in times]
    return dict(median=statistics.median(values),
                p90=float(np.percentile(values, 90)),
                mean=statistics.fmean(values), min=min(values),
                max=max(values), per_s=len(values) / sum(values),
                runs=values)


# ----------------------------------------------------------------------------
# Memory


def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def current_rss_mb() -> Optional[float]:
    """Resident set size of this process (MiB), None where unknown."""
    kb = _proc_status_kb('VmRSS')
    return None if kb is None else kb / 1024


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS counter (``VmHWM``) of this process.

    Returns:
        bool: Whether it was reset (Linux >= 4.0). If not, :func:`peak_rss_mb`
        reports the peak over the whole life of the process.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size (MiB) since the last :func:`reset_peak_rss`."""
    kb = _proc_status_kb('VmHWM')
    if kb is None:  # not Linux: lifetime peak (bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = peak / 1024 if sys.platform == 'darwin' else peak
    return kb / 1024


# ----------------------------------------------------------------------------
# Vocabularies (shared with benchmark_text_encoder.py)


def load_vocabulary(spec: str):
    """A vocabulary from a benchmark key, a dataset type or a text file.

    Args:
        spec: A key of :data:`mmovss.vocab.benchmarks.BENCHMARK_NAMES`
            (``'ade20k_847'``, ``'pascal_context_459'``, ``'coco_stuff171'``
            ...), a registered dataset type (its ``METAINFO`` classes, e.g.
            ``'ADE20K847Dataset'``) or a text file with one class per line.

    Returns:
        Vocabulary: The classes (with their synonyms).

    Raises:
        BenchmarkError: ``spec`` is none of these.
    """
    import mmovss  # noqa: F401  (registers the datasets)
    from mmovss.vocab import Vocabulary
    from mmovss.vocab.benchmarks import BENCHMARK_NAMES, \
        load_benchmark_classes
    if osp.isfile(spec):
        return Vocabulary.from_file(spec)
    if spec in BENCHMARK_NAMES:
        return Vocabulary(load_benchmark_classes(spec), source=spec)
    from mmseg.registry import DATASETS
    dataset_cls = DATASETS.get(spec)
    if dataset_cls is not None and \
            (getattr(dataset_cls, 'METAINFO', None) or {}).get('classes'):
        return Vocabulary.from_metainfo(dataset_cls.METAINFO)
    raise BenchmarkError(
        f'Unknown vocabulary {spec!r}: give a benchmark name '
        f'({", ".join(BENCHMARK_NAMES)}), a registered dataset type '
        f'(e.g. ADE20K847Dataset) or a text file with one class per line.')


def synthetic_vocabulary(num_classes: int):
    """``num_classes`` made-up class names (``'synthetic class 0'``, ...)."""
    from mmovss.vocab import Vocabulary
    if num_classes < 1:
        raise BenchmarkError(f'--num-classes must be >= 1, got {num_classes}.')
    return Vocabulary([f'synthetic class {i}' for i in range(num_classes)],
                      source=f'{num_classes} synthetic names')


# ----------------------------------------------------------------------------
# Random weights (shared with benchmark_san.py)


def keep_activation(node: dict, pretrained) -> None:
    """Keeps the activation an open_clip tag implies once it is dropped.

    open_clip builds OpenAI-trained towers (``pretrained='openai'``) with
    QuickGELU (``build_open_clip`` reads it from the tag through
    :func:`mmovss.models.utils.open_clip_weights.tag_quick_gelu`); without
    the tag a random model would get GELU, a different network (mmseg's SAN
    and CLIPTextEncoder use QuickGELU too).
    """
    name = node.get('model_name')
    if not isinstance(pretrained, str) or not isinstance(name, str) or \
            node.get('quick_gelu') is not None or os.path.isfile(pretrained):
        return
    from mmovss.models.utils.open_clip_weights import tag_quick_gelu
    if tag_quick_gelu(name, pretrained):
        node['quick_gelu'] = True  # other tags: the default GELU


def use_random_weights(model_cfg, notes: Optional[List[str]] = None):
    """Replaces every weight source of a model config by random init.

    In place, recursively: ``pretrained`` fields (open_clip tags or files,
    timm's ``pretrained=True``, mmseg's segmentor ``pretrained``) become
    None, ``init_cfg`` entries of type ``'Pretrained'`` are dropped, and a
    ``SAMMaskGenerator`` without weights is marked for a random SAM of its
    ``model_type`` (see :func:`randomize_sam`).

    Args:
        model_cfg (dict): The ``model`` part of a config.
        notes (list[str], optional): Receives one line per kind of change.

    Returns:
        The same config.
    """
    found = set()

    def visit(node):
        if isinstance(node, dict):
            if node.get('type') == 'SAMMaskGenerator' and \
                    node.get('model_cfg') is None:
                node['checkpoint'] = None
                # Built tiny here, replaced by a full-size random SAM after
                # the build (randomize_sam): the generator refuses to build
                # a full SAM without a checkpoint.
                node['model_cfg'] = dict()
                node['_benchmark_full_sam'] = node.get('model_type', 'vit_h')
                found.add(f"SAM {node['_benchmark_full_sam']}: random "
                          f'weights at full size (its masks are meaningless)')
            for key in list(node):
                value = node[key]
                if key == 'pretrained' and value not in (None, False):
                    keep_activation(node, value)
                    node[key] = None
                    found.add('pretrained weights replaced by random ones')
                elif key == 'init_cfg' and value is not None:
                    kept = [c for c in (value if isinstance(value, list)
                                        else [value])
                            if not (isinstance(c, dict)
                                    and c.get('type') == 'Pretrained')]
                    if len(kept) != (len(value) if isinstance(value, list)
                                     else 1):
                        found.add('Pretrained init_cfg dropped')
                    node[key] = (kept if isinstance(value, list) else
                                 (kept[0] if kept else None))
                else:
                    visit(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)

    visit(model_cfg)
    if notes is not None:
        notes.extend(sorted(found))
    return model_cfg


def _pop_sam_markers(model_cfg) -> None:
    """Removes the markers :func:`use_random_weights` left (before build)."""
    if isinstance(model_cfg, dict):
        model_cfg.pop('_benchmark_full_sam', None)
        for value in model_cfg.values():
            _pop_sam_markers(value)
    elif isinstance(model_cfg, (list, tuple)):
        for item in model_cfg:
            _pop_sam_markers(item)


def _sam_marker(model_cfg) -> Optional[str]:
    if isinstance(model_cfg, dict):
        if model_cfg.get('_benchmark_full_sam'):
            return model_cfg['_benchmark_full_sam']
        values = model_cfg.values()
    elif isinstance(model_cfg, (list, tuple)):
        values = model_cfg
    else:
        return None
    for value in values:
        found = _sam_marker(value)
        if found:
            return found
    return None


def randomize_sam(model: torch.nn.Module, model_type: str,
                  seed: int = 0) -> int:
    """Gives every ``SAMMaskGenerator`` a random SAM of ``model_type``.

    ``segment_anything.sam_model_registry[model_type]()`` builds the
    released architecture (``vit_h``, ``vit_l``, ``vit_b``) with random
    weights; nothing is read or downloaded.

    Returns:
        int: The number of generators changed.
    """
    from segment_anything import sam_model_registry

    from mmovss.models.decode_heads.sam_clip_mask_generator import \
        SAMMaskGenerator
    count = 0
    for module in model.modules():
        if isinstance(module, SAMMaskGenerator):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                sam = sam_model_registry[model_type]()
            module.sam = sam.eval().requires_grad_(False)
            count += 1
    return count


# ----------------------------------------------------------------------------
# Model, vocabulary, data


def load_benchmark_config(path: str, cfg_options=None):
    """The config as ``tools/test.py`` loads it (clear error if missing)."""
    from mmovss.runtime import load_config
    try:
        return load_config(path, cfg_options)
    except FileNotFoundError as err:
        raise BenchmarkError(str(err)) from None


def build_model(cfg, weights: str, checkpoint: Optional[str], device: str,
                notes: List[str], seed: int = 0):
    """Builds the segmentor of a config with the requested weights.

    Args:
        cfg (Config): The loaded config.
        weights (str): ``'random'`` (no weight file or download) or
            ``'config'`` (the config's own weight sources).
        checkpoint (str, optional): A trained checkpoint loaded strictly on
            top (as ``tools/test.py``).
        device (str): ``'cpu'`` or ``'cuda[:i]'``.
        notes (list[str]): Receives lines for the report.
        seed (int): Seed of the random initialisation.

    Returns:
        nn.Module: The model in eval mode, on ``device``.
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = copy.deepcopy(cfg.model)
    sam_type = None
    if weights == 'random':
        use_random_weights(model_cfg, notes)
        sam_type = _sam_marker(model_cfg)
        _pop_sam_markers(model_cfg)
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    if weights == 'random':
        # Modules left to their constructors may hold torch.empty memory.
        quiet_init_weights(model)
        if sam_type is not None:
            randomize_sam(model, sam_type, seed)
    if checkpoint is not None:
        load_checkpoint_strictly(model, checkpoint)
        notes.append(f'weights: {checkpoint}')
    return model.eval().to(device)


def is_contended(load_average: float, own_threads: int) -> bool:
    """Whether other processes compete for the cores.

    The 1-minute load average counts the benchmark's own busy threads (up to
    one per core); more than half a core beyond them is other work.
    """
    cores = os.cpu_count() or 1
    return load_average - min(own_threads, cores) > 0.5


def quiet_init_weights(model: torch.nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter log lines."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def load_checkpoint_strictly(model: torch.nn.Module, path: str) -> None:
    """Loads a checkpoint into ``model``; refuses one of another model.

    Raises:
        BenchmarkError: Missing, truncated or foreign checkpoint.
    """
    from mmengine.runner import load_checkpoint

    from mmovss.runtime import check_checkpoint_file
    try:
        check_checkpoint_file(path)
    except (FileNotFoundError, ValueError) as err:
        raise BenchmarkError(str(err)) from None
    try:
        load_checkpoint(model, path, map_location='cpu', strict=True,
                        logger='silent')
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise BenchmarkError(
            f"Checkpoint '{path}' does not fit the model of this config "
            f"({first[0] if first else err}...). It was probably trained "
            f'with another config.') from None


def choose_vocabulary(model, cfg, vocabulary: Optional[str],
                      num_classes: Optional[int]):
    """Sets the model's vocabulary and returns it.

    Priority: ``--vocabulary`` / ``--num-classes``, then the config's
    explicit vocabulary, then the class names of its test dataset.
    """
    if not hasattr(model, 'set_vocabulary'):
        raise BenchmarkError(
            f'{type(model).__name__} is not an open-vocabulary segmentor '
            f'(no set_vocabulary).')
    if vocabulary is not None:
        return model.set_vocabulary(load_vocabulary(vocabulary))
    if num_classes is not None:
        return model.set_vocabulary(synthetic_vocabulary(num_classes))
    if model.explicit_vocabulary is not None:
        return model.explicit_vocabulary
    from mmovss.apis.open_vocab_inferencer import OpenVocabInferencer
    meta = OpenVocabInferencer._test_dataset_meta(cfg)
    if not meta:
        raise BenchmarkError(
            'The config names no vocabulary and its test dataset has no '
            'classes: pass --vocabulary NAME or --num-classes N.')
    return model.set_dataset_vocabulary(meta)


def text_encoders(model) -> list:
    """The text encoders of a model (modules with an embedding cache)."""
    return [m for m in model.modules()
            if hasattr(m, 'embed_names') and hasattr(m, 'clear_memory_cache')]


def measure_text(model, cache_dir: str, device, autocast) -> Dict[str, float]:
    """Time of building the class embeddings, cold and warm.

    Args:
        model: The segmentor (vocabulary set).
        cache_dir: An empty directory used as the on-disk cache.
        device: Model device (for synchronisation).
        autocast: Context-manager factory of the inference precision.

    Returns:
        dict: ``cold_s`` (empty caches; ``cold_cpu_s`` its CPU time),
        ``warm_disk_s`` (memory cache cleared, disk cache filled) and
        ``warm_s`` (memory cache; median of 5 calls), plus ``prompts``
        (texts encoded cold) and ``templates``.
    """
    from mmovss.models.text_encoders.embedding_cache import \
        TextEmbeddingDiskCache
    encoders = text_encoders(model)
    if not encoders:
        raise BenchmarkError(f'{type(model).__name__} has no text encoder '
                             f'with an embedding cache.')
    for encoder in encoders:
        encoder.disk_cache = TextEmbeddingDiskCache(cache_dir)
        encoder.clear_memory_cache()

    def embed():
        with torch.no_grad(), autocast():
            return model.class_embeddings()

    cpu = []
    cold = timed_runs(embed, 1, 0, device, cpu)[0]
    for encoder in encoders:
        encoder.clear_memory_cache()
    warm_disk = timed_runs(embed, 1, 0, device)[0]
    warm = statistics.median(timed_runs(embed, 5, 0, device))
    vocab = model.vocabulary
    templates = len(getattr(encoders[0], 'templates', ()) or ())
    return dict(cold_s=cold, cold_cpu_s=cpu[0], warm_disk_s=warm_disk,
                warm_s=warm, prompts=vocab.num_names * templates,
                templates=templates)


def build_test_pipeline(cfg, drop_resize: bool):
    """The config's test pipeline fed with an array, without annotations.

    Args:
        cfg (Config): The config.
        drop_resize (bool): Remove resizing steps (``--shape`` gives the
            network input size directly).
    """
    from mmcv.transforms import Compose
    loader = cfg.get('test_dataloader') or {}
    steps = (loader.get('dataset') or {}).get('pipeline')
    if not steps:
        steps = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]
    out = []
    for step in steps:
        kind = str(step['type'])
        if 'Annotation' in kind:
            continue
        if drop_resize and 'Resize' in kind:
            continue
        if kind == 'LoadImageFromFile':
            step = dict(type='LoadImageFromNDArray',
                        to_float32=step.get('to_float32', False))
        out.append(copy.deepcopy(step))
    return Compose(out)


def make_image(image: Optional[str], size: Sequence[int],
               seed: int = 0) -> np.ndarray:
    """A BGR uint8 image: the file, resized to ``size`` if given, or noise.

    Args:
        image: Image file, or None for uniform noise.
        size: (H, W); None keeps the file's size.
        seed: Noise seed.
    """
    import mmcv
    if image is not None:
        if not osp.isfile(image):
            raise BenchmarkError(f'Image file {image!r} does not exist.')
        array = mmcv.imread(image)
        if array is None:
            raise BenchmarkError(f'Cannot read image {image!r}.')
        if size is not None:
            array = mmcv.imresize(array, (int(size[1]), int(size[0])))
        return array
    h, w = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3),
                                                dtype=np.uint8)


# ----------------------------------------------------------------------------
# Precision


def precision_context(model, dtype: Optional[str], device: str):
    """How the model runs in ``dtype``: a context-manager factory and a note.

    The segmentors' mixed-precision switch, ``test_cfg.inference_dtype``
    (:mod:`mmovss.models.utils.mixed_precision`: autocast of the image and
    text towers, float32 heads), is set when the model has it; other models
    run their whole forward under ``torch.autocast``.

    Args:
        model: The segmentor (None: only validate).
        dtype: ``'fp32'``, ``'bf16'``, ``'fp16'`` or None (the config's
            ``test_cfg.inference_dtype``, else fp32).
        device: The model's device.

    Raises:
        BenchmarkError: Unknown dtype, or fp16 on CPU (PyTorch's CPU
            autocast computes in bfloat16 only).
    """
    device_type = torch.device(device).type
    test_cfg = getattr(model, 'test_cfg', None)
    try:
        from mmovss.models.utils import mixed_precision
    except ImportError:  # a checkout without the switch
        mixed_precision = None
    switch = mixed_precision is not None and isinstance(test_cfg, dict)
    if dtype is None:
        dtype = str((test_cfg or {}).get('inference_dtype') or 'fp32')
        dtype = {'float32': 'fp32', 'bfloat16': 'bf16',
                 'float16': 'fp16'}.get(dtype, dtype)
    if dtype not in DTYPES:
        raise BenchmarkError(f'--dtype {dtype!r}: use one of {list(DTYPES)}.')
    if device_type == 'cpu' and dtype == 'fp16':
        raise BenchmarkError(
            '--dtype fp16 is not supported on CPU (PyTorch\'s CPU autocast '
            'computes in bfloat16 only); use --dtype bf16 on CPU, or '
            '--device cuda for fp16.')
    if model is None:
        return contextlib.nullcontext, dtype
    if switch:
        test_cfg['inference_dtype'] = dtype
        return contextlib.nullcontext, (
            dtype if dtype == 'fp32' else
            f'{dtype} (test_cfg.inference_dtype: autocast towers)')
    if dtype == 'fp32':
        return contextlib.nullcontext, 'fp32'
    return (lambda: torch.autocast(device_type, dtype=DTYPES[dtype]),
            f'{dtype} (torch.autocast of the whole forward)')


# ----------------------------------------------------------------------------
# The benchmark


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Latency, throughput, peak memory and text-encoding cost '
        'of a segmentor config (random weights unless --checkpoint).')
    parser.add_argument('config', help='config file')
    parser.add_argument('--checkpoint', default=None,
                        help='trained checkpoint, loaded strictly')
    parser.add_argument('--config-weights', action='store_true',
                        help="keep the config's weight sources (open_clip "
                        'tags or files, timm/mmengine pretrained: may '
                        'download) instead of random weights')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='network input size: the image is made this '
                        "size and the pipeline's resize steps are skipped "
                        "(default: the config's test pipeline)")
    parser.add_argument('--image', default=None,
                        help='image file (default: uniform noise)')
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('H', 'W'),
                        default=None, help='size of the image before the '
                        'test pipeline (default %dx%d for noise, the file '
                        'size for --image)' % DEFAULT_IMAGE_SIZE)
    vocab = parser.add_mutually_exclusive_group()
    vocab.add_argument('--vocabulary', default=None, metavar='NAME',
                       help='benchmark vocabulary (ade20k_847, '
                       'pascal_context_459, coco_stuff171, ...), dataset '
                       'type or text file (default: the config\'s)')
    vocab.add_argument('--num-classes', type=int, default=None, metavar='N',
                       help='N synthetic class names')
    parser.add_argument('--device', default='cpu',
                        help="'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument('--dtype', default=None, choices=list(DTYPES),
                        help="inference precision (default: the config's "
                        'test_cfg.inference_dtype, else fp32)')
    parser.add_argument('--repeat', type=int, default=5,
                        help='timed runs (default 5)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed runs first (default 1)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', default=None, metavar='PATH',
                        help='write the results as JSON')
    parser.add_argument('--markdown', action='store_true',
                        help='also print a docs/benchmarks.md table row')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config')
    return parser.parse_args(argv)


def check_device(device: str) -> str:
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise BenchmarkError(f'--device {device!r}: {err}') from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError(f'--device {device}: CUDA is not available on '
                             f'this machine; use --device cpu.')
    if dev.type not in ('cpu', 'cuda'):
        raise BenchmarkError(f"--device {device!r}: use 'cpu' or 'cuda[:N]'.")
    return device


def device_name(device: str) -> str:
    """The GPU's name, or the CPU model and thread count."""
    if torch.device(device).type == 'cuda':
        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    name = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return f'{name}, {os.cpu_count()} cores'


def command_line(argv: Sequence[str]) -> str:
    """The command that reproduces a run (repository-relative tool path).

    The output options (``--json PATH``, ``--markdown``), which do not change
    what is measured, are left out.
    """
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == '--json':
            skip = True
        elif arg != '--markdown' and not arg.startswith('--json='):
            kept.append(arg)
    return 'python tools/analysis_tools/benchmark.py ' + shlex.join(kept)


def run_benchmark(args, argv: Sequence[str]) -> dict:
    """Builds, measures and returns the results of one configuration."""
    import mmovss  # noqa: F401  (compat + registration)
    from mmengine.dataset import pseudo_collate
    device = check_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.repeat < 1 or args.warmup < 0:
        raise BenchmarkError('--repeat must be >= 1 and --warmup >= 0.')
    precision_context(None, args.dtype, device)  # fp16 on CPU: clear error
    if args.vocabulary is not None:
        load_vocabulary(args.vocabulary)  # fail before the (slow) build
    if args.num_classes is not None:
        synthetic_vocabulary(args.num_classes)
    cfg = load_benchmark_config(args.config, args.cfg_options)
    cfg.load_from = None
    notes: List[str] = []
    weights = 'config' if args.config_weights else 'random'

    gc.collect()
    rss_start = current_rss_mb()
    progress(f'building {args.config} ({weights} weights)')
    start = time.perf_counter()
    model = build_model(cfg, weights, args.checkpoint, device, notes,
                        args.seed)
    build_s = time.perf_counter() - start
    autocast, precision = precision_context(model, args.dtype, device)
    vocabulary = choose_vocabulary(model, cfg, args.vocabulary,
                                   args.num_classes)
    gc.collect()
    rss_model = current_rss_mb()

    with tempfile.TemporaryDirectory(prefix='mmovss_bench_text_') as cache:
        progress(f'built in {build_s:.1f} s; text encoding of '
                 f'{vocabulary.num_names} names, cold and warm')
        text = measure_text(model, cache, device, autocast)

        pipeline = build_test_pipeline(cfg,
                                       drop_resize=args.shape is not None)
        size = args.shape or args.image_size or \
            (None if args.image else DEFAULT_IMAGE_SIZE)
        image = make_image(args.image, size, args.seed)
        packed = pipeline(dict(img=image))
        runs = [pseudo_collate([copy.deepcopy(packed)])
                for _ in range(args.warmup + args.repeat)]
        with torch.no_grad():
            net_shape = tuple(model.data_preprocessor(
                copy.deepcopy(runs[0]), False)['inputs'].shape[-2:])

        sam_masks = []
        hooks = []
        for module in model.modules():
            if type(module).__name__ == 'SAMMaskGenerator':
                hooks.append(module.register_forward_hook(
                    lambda m, i, o: sam_masks.append(int(o[0].shape[0]))))
        outputs = []

        def infer():
            data = runs.pop()
            start = time.perf_counter()
            with torch.no_grad(), autocast():
                outputs.append(model.test_step(data))
            del outputs[:-1]
            progress(f'image {len(outputs_done) + 1}/'
                     f'{args.warmup + args.repeat} (warm-up: '
                     f'{args.warmup}): {time.perf_counter() - start:.2f} s')
            outputs_done.append(1)

        outputs_done = []
        progress(f'text cold {text["cold_s"]:.2f} s; image {image.shape[0]}'
                 f'x{image.shape[1]} -> network input {net_shape[0]}x'
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
        times = timed_runs(infer, args.repeat, args.warmup, device,
                           cpu_times)
        load_after = os.getloadavg()[0]
        peak_rss = peak_rss_mb()
        for hook in hooks:
            hook.remove()

    pred = outputs[-1][0].pred_sem_seg.data
    memory = dict(rss_start_mb=rss_start, rss_model_mb=rss_model,
                  rss_before_inference_mb=rss_before, peak_rss_mb=peak_rss,
                  peak_rss_above_model_mb=(peak_rss - rss_model
                                           if rss_model else None),
                  peak_rss_reset=rss_reset)
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
    config = osp.relpath(args.config, ROOT) if osp.abspath(
        args.config).startswith(ROOT) else args.config
    parts = config.replace('\\', '/').split('/')
    method = parts[1] if len(parts) > 2 and parts[0] == 'configs' \
        else osp.basename(osp.dirname(config))
    return dict(
        config=config,
        method=method,
        command=command_line(argv),
        model=type(model).__name__,
        params_m=sum(p.numel() for p in model.parameters()) / 1e6,
        weights=('checkpoint' if args.checkpoint else weights),
        device=device,
        device_name=device_name(device),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        dtype=precision.split()[0],
        precision=precision,
        vocabulary=dict(source=vocabulary.source if hasattr(
            vocabulary, 'source') else None,
            num_classes=vocabulary.num_classes,
            num_names=vocabulary.num_names),
        image=dict(source=args.image or 'noise',
                   ori_shape=list(image.shape[:2]),
                   net_shape=list(net_shape),
                   pred_shape=list(pred.shape[-2:])),
        test_mode=dict(model.test_cfg).get('mode', 'whole'),
        repeat=args.repeat,
        warmup=args.warmup,
        build_s=build_s,
        latency_s=summarize_times(times),
        images_per_s=len(times) / sum(times),
        cpu_s_per_image=statistics.median(cpu_times),
        load_average=[load_before, load_after],
        contended=is_contended(max(load_before, load_after),
                               torch.get_num_threads()),
        memory=memory,
        text=text,
        notes=notes)


def format_report(result: dict) -> str:
    """A readable table of one result."""
    lat = result['latency_s']
    mem = result['memory']
    text = result['text']
    vocab = result['vocabulary']
    img = result['image']
    if 'gpu_peak_mb' in mem:
        memory = (f"{mem['gpu_peak_mb']:.0f} MiB max allocated "
                  f"(model {mem['gpu_model_mb']:.0f} MiB); process RSS peak "
                  f"{mem['peak_rss_mb']:.0f} MiB")
    else:
        above = mem['peak_rss_above_model_mb']
        memory = (f"{mem['peak_rss_mb']:.0f} MiB peak RSS, "
                  f"{above:.0f} MiB above the built model "
                  f"({mem['rss_model_mb']:.0f} MiB)" if above is not None
                  else f"{mem['peak_rss_mb']:.0f} MiB peak RSS")
    rows = [
        ('config', result['config']),
        ('model', f"{result['model']}, {result['params_m']:.1f} M params, "
                  f"{result['weights']} weights"),
        ('device', f"{result['device']} ({result['device_name']}), "
                   f"{result['threads']} threads, {result['precision']}, "
                   f"torch {result['torch']}"),
        ('vocabulary', f"{vocab['num_classes']} classes "
                       f"({vocab['num_names']} names) from "
                       f"{vocab['source']}"),
        ('image', f"{img['source']} {img['ori_shape'][0]}x"
                  f"{img['ori_shape'][1]} -> network input "
                  f"{img['net_shape'][0]}x{img['net_shape'][1]} "
                  f"({result['test_mode']})"),
        ('latency / image', f"median {lat['median']:.3f} s, p90 "
                            f"{lat['p90']:.3f} s (min {lat['min']:.3f}, "
                            f"{result['repeat']} runs after "
                            f"{result['warmup']} warm-up)"),
        ('throughput', f"{result['images_per_s']:.2f} images/s"),
        ('CPU time / image', f"{result['cpu_s_per_image']:.3f} s (median, "
                             f"all threads; 1-min load average "
                             f"{result['load_average'][0]:.1f} -> "
                             f"{result['load_average'][1]:.1f} on "
                             f"{os.cpu_count()} cores"
                             f"{': CONTENDED' if result['contended'] else ''}"
                             f")"),
        ('peak memory', memory),
        ('text encoding', f"cold {text['cold_s']:.3f} s "
                          f"(CPU {text['cold_cpu_s']:.3f} s, "
                          f"{text['prompts']} prompts), warm from disk "
                          f"{text['warm_disk_s'] * 1e3:.1f} ms, warm "
                          f"{text['warm_s'] * 1e3:.2f} ms"),
        ('build', f"{result['build_s']:.1f} s"),
    ]
    rows += [('note', n) for n in result['notes']]
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)


MARKDOWN_HEADER = (
    '| method | config | input (net) | classes | median s/img | p90 s/img | '
    'img/s | CPU s/img | load | peak RSS MiB (above model) | text cold s '
    '(CPU s) / warm-disk ms / warm ms | command |\n'
    '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | '
    '---: | --- |')


def markdown_row(result: dict) -> str:
    """One ``docs/benchmarks.md`` row, with the exact command."""
    lat = result['latency_s']
    mem = result['memory']
    text = result['text']
    img = result['image']
    if 'gpu_peak_mb' in mem:
        memory = f"{mem['gpu_peak_mb']:.0f} (GPU max alloc.)"
    else:
        above = mem['peak_rss_above_model_mb']
        memory = f"{mem['peak_rss_mb']:.0f} ({above:.0f})" \
            if above is not None else f"{mem['peak_rss_mb']:.0f}"
    return (f"| {result['method']} | `{osp.basename(result['config'])}` | "
            f"{img['net_shape'][0]}x{img['net_shape'][1]} "
            f"({result['test_mode']}) | "
            f"{result['vocabulary']['num_classes']} | {lat['median']:.2f} | "
            f"{lat['p90']:.2f} | {result['images_per_s']:.2f} | "
            f"{result['cpu_s_per_image']:.2f} | "
            f"{max(result['load_average']):.1f} | {memory} | "
            f"{text['cold_s']:.2f} ({text.get('cold_cpu_s', float('nan')):.2f})"
            f" / {text['warm_disk_s'] * 1e3:.1f} / "
            f"{text['warm_s'] * 1e3:.2f} | `{result['command']}` |")


def main(argv=None) -> dict:
    """Runs the benchmark and prints the report.

    Args:
        argv (list[str], optional): Command-line arguments (default:
            ``sys.argv[1:]``).

    Returns:
        dict: The results (as written by ``--json``).

    Raises:
        BenchmarkError: An impossible request (missing config, unknown
            vocabulary, fp16 on CPU, CUDA absent, foreign checkpoint ...).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    result = run_benchmark(args, argv)
    print(format_report(result), flush=True)
    if args.markdown:
        print(MARKDOWN_HEADER)
        print(markdown_row(result), flush=True)
    if args.json:
        folder = osp.dirname(osp.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        main()
    except BenchmarkError as err:
        sys.exit(f'benchmark.py: error: {err}')
