"""Test (and evaluate) a segmentor; prints the per-class IoU table and mIoU.

Examples::

    python tools/test.py CONFIG CHECKPOINT
    python tools/test.py CONFIG            # training-free methods need no checkpoint
    python tools/test.py CONFIG CHECKPOINT --out preds/ --show-dir vis/
    # --out must be new or empty (--overwrite: non-empty); never inside a dataset folder
    python tools/test.py CONFIG CHECKPOINT --benchmark ade20k_847   # any benchmark
    # a released model: its name (downloads its checkpoint), or the authors' file or URL
    # (recognised by its keys, converted once and cached; docs/reproduce.md)
    python tools/test.py catseg_vit-b16 --benchmark ade20k_150
    python tools/test.py configs/catseg/CONFIG.py /path/to/model_base.pth --benchmark ade20k_150
    bash tools/dist_test.sh CONFIG CHECKPOINT 2
"""
import argparse
import logging
import os
import os.path as osp
import sys

# huge pages for CPU tensors >= 2 MiB, read by PyTorch at its first allocation
# (mmovss.benchmarking.memory.HUGE_PAGES_ENV; THP_MEM_ALLOC_ENABLE=0 turns it off)
os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import mmovss  # noqa: E402,F401  (compat + registration before mmseg is used)
from mmovss.apis.model_zoo import resolve_model  # noqa: E402
from mmovss.apis.released_weights import (  # noqa: E402
    load_prepared,
    prepare_weights,
    released_config_mismatch,
    released_model_of,
)
from mmovss.engine import unwrap_segmentor  # noqa: E402
from mmovss.evaluation.tta import check_tta_fits, use_tta  # noqa: E402
from mmovss.evaluation.unseen_check import UnseenClassesCheckHook, checkpoint_training_classes  # noqa: E402
from mmovss.models.utils.open_clip_weights import fetch_pretrained_clip_weights  # noqa: E402
from mmovss.protocols import BENCHMARK_KEYS, apply_benchmark  # noqa: E402
from mmovss.runtime import (  # noqa: E402
    NON_STRICT_HINT,
    CheckpointMismatchError,
    check_checkpoint_file,
    check_fixed_vocabulary,
    check_output_paths,
    close_process_group,
    export_local_rank,
    load_checkpoint_strictly,
    load_config,
    merge_cfg_options,
    name_run,
    release_dataloader_workers,
    run_tool,
    set_launcher,
    set_work_dir,
    warn_if_trained_with_other_settings,
)
from mmovss.trained_weights import require_trained_weights  # noqa: E402

from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) an mmovss segmentor')
    parser.add_argument('config', help='test config file path, or a model name '
                        '(python tools/demo.py --list-models; released models bring their '
                        'checkpoint)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint file or URL, in mmovss\'s layout or as released by '
                        'the authors (converted once, cached); not needed by training-free '
                        'methods')
    parser.add_argument('--weights-dir',
                        help='folder for downloaded and converted checkpoints (default: '
                        '$MMOVSS_WEIGHTS_DIR, else torch hub\'s checkpoints folder)')
    parser.add_argument('--work-dir', help='the dir to save the metrics as json')
    parser.add_argument('--benchmark', choices=BENCHMARK_KEYS,
                        help="evaluate on this benchmark with the method's protocol for it "
                        '(dataset, vocabulary, metric; docs/configs.md)')
    parser.add_argument('--out', type=str,
                        help='the dir to save the predicted label maps for offline evaluation')
    parser.add_argument('--overwrite', action='store_true',
                        help='write --out into a non-empty folder (a dataset folder or a hard '
                        'link of a dataset file is refused all the same)')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='dir where painted images will be saved (every '
                        'image; --show-interval N for every N-th)')
    parser.add_argument('--show-interval', type=int, default=1, metavar='N',
                        help='with --show / --show-dir: draw every N-th image (default 1)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--tta', action='store_true', help='test time augmentation')
    parser.add_argument('--allow-random-weights', action='store_true',
                        help='evaluate a trained model without a checkpoint (random learned '
                        'weights; for speed tests and debugging only)')
    parser.add_argument('--non-strict', action='store_true',
                        help='load a checkpoint whose keys do not all match the model '
                        '(by default such a checkpoint is refused)')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    export_local_rank(args.local_rank)
    return args


def enable_visualization(cfg, args) -> None:
    """Turns on ``SegVisualizationHook`` drawing for ``--show``/``--show-dir``."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise RuntimeError('--show/--show-dir need a visualization hook in default_hooks: '
                           "visualization=dict(type='SegVisualizationHook')")
    hook['draw'] = True
    if args.show_interval < 1:
        raise ValueError(f'--show-interval must be >= 1, got {args.show_interval}.')
    hook['interval'] = args.show_interval  # SegVisualizationHook's default, 50, drew few
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir


def main(argv=None):
    """Tests CONFIG (with CHECKPOINT); returns the evaluator's metrics (dict)."""
    args = parse_args(argv)
    released = None
    if not osp.isfile(args.config) and not args.config.endswith('.py') \
            and os.sep not in args.config:  # a model name
        args.config, released = resolve_model(args.config)
    cfg = load_config(args.config)
    name = args.config
    if args.benchmark:  # the benchmark's protocol first, --cfg-options over it
        cfg = apply_benchmark(cfg, args.benchmark)
        name = f'{osp.splitext(args.config)[0]}_{args.benchmark}.py'
    if args.cfg_options:
        merge_cfg_options(cfg, args.cfg_options)
    check_fixed_vocabulary(cfg)  # a fixed name list is checked against the test set
    set_launcher(cfg, args.launcher, testing=True)  # no DDP: training-free models run too
    set_work_dir(cfg, name, args.work_dir)
    # Never write predictions over ground truth or into a non-empty folder.
    check_output_paths(cfg, args.out, args.overwrite, args.show_dir)
    # CLIP tags cached or downloaded now: offline, the error is the only output
    fetch_pretrained_clip_weights(cfg.model)
    # The CLI checkpoint, else the config's `load_from`; loaded below, strictly.
    # A released name's checkpoint comes after both. Official formats are converted
    # once (cached), URLs downloaded once (mmovss.apis.released_weights).
    checkpoint = args.checkpoint or cfg.get('load_from') or released
    prepared = None
    if checkpoint is not None:
        prepared = prepare_weights(checkpoint, cache_dir=args.weights_dir)
        checkpoint = prepared.path
        check_checkpoint_file(checkpoint)
    cfg.load_from = None
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    segmentor_cfg = cfg.model
    if args.tta:
        use_tta(cfg)
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    name_run(cfg)
    runner = Runner.from_cfg(cfg)
    require_trained_weights(runner.model, checkpoint, args.allow_random_weights, args.config)
    if args.tta:
        check_tta_fits(runner.model)
    try:
        if prepared is not None and prepared.absent_prefixes and not args.non_strict:
            # a release without the parts its config loads from a pretrained source
            load_prepared(unwrap_segmentor(runner.model), prepared,
                          hint=NON_STRICT_HINT)
        elif checkpoint is not None:
            load_checkpoint_strictly(runner, checkpoint, strict=not args.non_strict,
                                     inner=args.tta, hint=NON_STRICT_HINT)
    except CheckpointMismatchError as err:  # name what was passed, and its config if released
        if prepared is None or not prepared.converted:
            raise
        release = released_model_of(prepared)
        hint = f' It is the released checkpoint of {release.name}: test it with its config ' \
            f'{release.config}.' if release is not None else ''
        raise CheckpointMismatchError(
            f'{err} (converted from {prepared.source!r}, format {prepared.format}).'
            f'{hint}') from None
    if checkpoint is not None:  # trained with other model settings?
        warn_if_trained_with_other_settings(checkpoint, segmentor_cfg)
    mismatch = prepared and released_config_mismatch(args.config, prepared)
    if mismatch:  # a released file with the config of another release
        print_log(f'WARNING: {mismatch}', logger='current', level=logging.WARNING)
    if checkpoint is not None:  # unseen classes of this test that the checkpoint trained on
        runner.register_hook(UnseenClassesCheckHook(checkpoint_training_classes(checkpoint),
                                                    checkpoint))
    try:
        metrics = runner.test()
    finally:
        release_dataloader_workers(runner)
    close_process_group()
    return metrics


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
