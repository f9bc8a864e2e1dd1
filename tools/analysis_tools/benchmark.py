"""Speed and memory of a segmentor config: image latency and text-encoding cost.

Builds the model of CONFIG as ``tools/test.py`` does (``--cfg-options``
applied, the plugin registered) and times ``model.test_step`` on one packed
image of the config's test pipeline. Prints the median and p90 latency per
image, images per second, the peak memory during inference (CPU: peak RSS,
also above the built model; GPU: ``torch.cuda.max_memory_allocated``) and the
text-encoding cost of the vocabulary (cold, warm from disk, warm), and the
efficiency: the FLOPs of the predict and of its image encoder (counted in a
separate untimed pass), the machine's matrix peak on the model's dominant
matmul shape in the run's precision, the achieved FLOP/s and its fraction of
the peak (``--no-efficiency`` skips these). On CPU, ``--dtype bf16`` falls
back to fp32 with a note when bf16 products are slower than fp32 there (a
CPU without AMX / AVX512-BF16); ``--strict-dtype`` refuses instead.

Without ``--checkpoint`` every weight source of the config is replaced by
random initialisation (nothing is downloaded or read; SAM + CLIP gets a
random SAM of the config's size); ``--checkpoint`` loads a trained one
strictly, as ``tools/test.py``; ``--config-weights`` keeps the config's own.
The tool sets ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch: huge pages for CPU tensors
of >= 2 MiB) unless it is set, and reports whether large tensors got them.
The measurement lives in :mod:`mmovss.benchmarking`. Examples::

    python tools/analysis_tools/benchmark.py \\
        configs/naclip/naclip_vit-b16_ade20k_150.py --repeat 3 --warmup 1
    python tools/analysis_tools/benchmark.py \\
        configs/san/san_vit-b16_60k_coco-stuff171-640x640.py --benchmark ade20k_150 \\
        --shape 640 640 --vocabulary ade20k_847 --json san.json --markdown
    python tools/analysis_tools/benchmark.py CONFIG --device cuda --dtype bf16
    python tools/analysis_tools/benchmark.py CONFIG --dtype bf16 --strict-dtype
    python tools/analysis_tools/benchmark.py CONFIG --no-efficiency --repeat 1
    python tools/analysis_tools/benchmark.py \
        configs/naclip/naclip_vit-b16_ade20k_150.py --benchmark ade20k_847
"""
import argparse
import json
import os
import os.path as osp
import sys

# huge pages for CPU tensors >= 2 MiB, read by PyTorch at its first allocation
# (mmovss.benchmarking.memory.HUGE_PAGES_ENV; THP_MEM_ALLOC_ENABLE=0 turns it off)
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # runs from a clone without installation

from mmovss.benchmarking import (  # noqa: E402
    DEFAULT_IMAGE_SIZE,
    DTYPES,
    EFFICIENCY_HEADER,
    MARKDOWN_HEADER,
    BenchmarkError,
    benchmark_segmentor,
    command_line,
    efficiency_row,
    format_report,
    markdown_row,
)
from mmovss.protocols import BENCHMARK_KEYS  # noqa: E402


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
    parser.add_argument('--no-efficiency', action='store_true',
                        help='skip the FLOP count and the matrix peak '
                        '(quicker; no FLOP/s or fraction of peak)')
    parser.add_argument('--strict-dtype', action='store_true',
                        help='refuse --dtype bf16 on a CPU whose bf16 matrix '
                        'products are slower than fp32 (default: fall back '
                        'to fp32 with a note)')
    parser.add_argument('--json', default=None, metavar='PATH',
                        help='write the results as JSON (a new file: checked '
                        'before the run)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --json file')
    parser.add_argument('--markdown', action='store_true',
                        help='also print a docs/benchmarks.md table row')
    parser.add_argument('--benchmark', choices=BENCHMARK_KEYS, default=None,
                        help="measure on this benchmark with the method's "
                        'protocol for it (vocabulary, test pipeline, '
                        'window; as tools/test.py --benchmark)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config (after '
                        '--benchmark)')
    return parser.parse_args(argv)


def check_json_output(args) -> None:
    """Refuses ``--json`` before the run when it would replace the config,
    the checkpoint, the image, a file of the config's datasets or (without
    ``--overwrite``) any existing file (:func:`mmovss.io.check_output_file`)."""
    from mmovss.io import UnsafeOutputError, check_output_file
    from mmovss.runtime import config_dataset_folders, load_config
    try:
        folders = config_dataset_folders(load_config(args.config))
    except Exception:  # noqa: BLE001  (benchmark_segmentor reports a bad config)
        folders = []
    try:
        check_output_file(args.json, overwrite=args.overwrite, protected_dirs=folders,
                          protected_files=[args.config, args.checkpoint, args.image])
    except UnsafeOutputError as err:
        raise BenchmarkError(str(err)) from None


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
    if args.json:
        check_json_output(args)
    result = benchmark_segmentor(
        args.config, checkpoint=args.checkpoint,
        config_weights=args.config_weights, shape=args.shape,
        image=args.image, image_size=args.image_size,
        vocabulary=args.vocabulary, num_classes=args.num_classes,
        device=args.device, dtype=args.dtype, repeat=args.repeat,
        warmup=args.warmup, threads=args.threads, seed=args.seed,
        cfg_options=args.cfg_options, benchmark=args.benchmark,
        command=command_line(argv),
        efficiency_pass=not args.no_efficiency,
        strict_dtype=args.strict_dtype)
    print(format_report(result), flush=True)
    if args.markdown:
        print(MARKDOWN_HEADER)
        print(markdown_row(result), flush=True)
        if result['efficiency']:
            print()
            print(EFFICIENCY_HEADER)
            print(efficiency_row(result), flush=True)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    try:
        main()
    except BenchmarkError as err:
        sys.exit(f'benchmark.py: error: {err}')
