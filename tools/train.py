"""Train a segmentor (MMSegmentation's ``tools/train.py`` flags, mmovss loaded).

Examples::

    python tools/train.py configs/ovshapes/CONFIG.py --work-dir work_dirs/run
    python tools/train.py CONFIG --resume                # newest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/run/iter_400.pth
    bash tools/dist_train.sh CONFIG 2                    # 2 processes (torchrun)
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
from mmovss.models.utils.open_clip_weights import fetch_pretrained_clip_weights  # noqa: E402
from mmovss.runtime import (  # noqa: E402
    check_checkpoint_file,
    check_fixed_vocabulary,
    check_output_paths,
    check_resume_checkpoint_fits,
    checkpoint_meta,
    close_process_group,
    export_local_rank,
    find_resumable_checkpoint,
    load_config,
    name_run,
    release_dataloader_workers,
    run_tool,
    set_launcher,
    set_work_dir,
    step_checkpoints,
    warn_if_resumed_with_another_batch_size,
)

from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.runner import Runner  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train an mmovss segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None, metavar='CHECKPOINT',
        help='resume training: without a value from the newest checkpoint in the '
        'work dir, or from the given checkpoint file')
    parser.add_argument('--overwrite', action='store_true',
                        help='start a new run in a work dir that holds checkpoints of an '
                        'earlier one (its same-named checkpoints are replaced)')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_dataloader.batch_size=4 model.backbone.pretrained=PATH')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    export_local_rank(args.local_rank)
    return args


def apply_amp(cfg) -> None:
    """Switches the optimizer wrapper to ``AmpOptimWrapper``."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper == 'AmpOptimWrapper':
        print_log('AMP training is already enabled in your config.', logger='current')
        return
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp works with OptimWrapper only, the config uses {wrapper}')
    import torch
    if not torch.cuda.is_available():
        raise ValueError('--amp needs a GPU: mmengine\'s AmpOptimWrapper runs on CUDA (or '
                         'NPU / MLU) devices only. On this machine train without --amp.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'


def resume_newest_complete(cfg) -> None:
    """``--resume`` without a file: the newest complete checkpoint of the work dir.

    A checkpoint cut short by a crash or SIGKILL while being written is
    skipped (with a warning), never loaded.
    """
    path, skipped = find_resumable_checkpoint(cfg.work_dir)
    for bad in skipped:
        print_log(f'--resume: skipping incomplete checkpoint {bad}', logger='current',
                  level=logging.WARNING)
    if path is None:
        print_log(f'--resume: no complete checkpoint in {cfg.work_dir}; training starts '
                  'from the beginning.', logger='current', level=logging.WARNING)
        return
    print_log(f'--resume: resuming from {path}', logger='current')
    cfg.resume = True
    cfg.load_from = path


def refuse_finished_resume(cfg) -> None:
    """``--resume`` from a checkpoint at or past ``max_iters`` trains nothing:
    mmengine ends at once with exit code 0."""
    done = checkpoint_meta(cfg.load_from).get('iter')
    total = (cfg.get('train_cfg') or {}).get('max_iters')
    if isinstance(done, int) and isinstance(total, int) and done >= total:
        sys.exit(f'error: --resume: {cfg.load_from} is at iteration {done} and the config '
                 f'trains to train_cfg.max_iters={total}: nothing is left to train. Raise '
                 f'max_iters (--cfg-options train_cfg.max_iters=N) to train longer.')


def refuse_earlier_checkpoints(work_dir: str) -> None:
    """A new run (no ``--resume``) in a work dir with checkpoints of an earlier
    run would replace its same-named ``iter_N.pth`` and leave the others mixed
    with the new run's (a later ``--resume`` could pick either)."""
    found = step_checkpoints(work_dir)
    if found:
        sys.exit(f'error: the work dir {work_dir!r} holds checkpoints of an earlier run '
                 f'({", ".join(found[:3])}{", ..." if len(found) > 3 else ""}). Pass --resume '
                 f'to continue it, another --work-dir for a new run, or --overwrite to start a '
                 f'new run here anyway (its same-named checkpoints are replaced).')


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    check_fixed_vocabulary(cfg)  # a fixed name list is checked against the datasets
    set_launcher(cfg, args.launcher)
    set_work_dir(cfg, args.config, args.work_dir)
    check_output_paths(cfg)  # the work dir may not lie inside a dataset folder
    # CLIP tags cached or downloaded now: offline, the error is the only output
    fetch_pretrained_clip_weights(cfg.model)
    if args.amp:
        apply_amp(cfg)
    if args.resume is None and not args.overwrite:
        refuse_earlier_checkpoints(cfg.work_dir)
    if args.resume == 'auto':
        resume_newest_complete(cfg)
    elif args.resume is not None:
        check_checkpoint_file(args.resume)
        cfg.resume = True
        cfg.load_from = args.resume
    if cfg.get('resume') and cfg.get('load_from'):
        refuse_finished_resume(cfg)
        warn_if_resumed_with_another_batch_size(cfg)
    name_run(cfg)
    runner = Runner.from_cfg(cfg)
    if cfg.get('resume') and cfg.get('load_from'):
        # A checkpoint of another model: name the keys, not the optimizer's symptom.
        check_resume_checkpoint_fits(runner.model, cfg.load_from)
    try:
        runner.train()
    finally:
        release_dataloader_workers(runner)
    close_process_group()


if __name__ == '__main__':
    run_tool(main)  # user errors: one line, exit code 2
