"""Train and test OVShapes configs on several generated worlds; write the table.

Every listed config is trained (training-free configs only tested) on each
world seed; the markdown table reports mean +- std over the worlds of seen and
unseen mIoU, hIoU and training time, with the exact commands. Resumable: a
rerun with the same --work-root skips finished (config, seed) cells and redoes
interrupted ones. The table holds every finished cell of the work root (runs
of other --configs or --seeds on it add their rows; --only-this-run for this
run's alone). Progress goes to stderr. Library: mmovss/ovshapes/table.py.

    python tools/ovshapes/run_table.py --seeds 1 2 3 --work-root work_dirs/ovshapes_table \\
        --out work_dirs/ovshapes_table/table.md
    # quick check: two tiny worlds, 5 iterations, two configs
    python tools/ovshapes/run_table.py --seeds 1 2 --iters 5 --num-train 8 --num-val 4 \\
        --configs configs/ovshapes/dense-clip_tiny-clip_ovshapes.py \\
                  configs/ovshapes/dense-refine_tiny-clip_1k_ovshapes-seen.py \\
        --train-cfg-options train_dataloader.batch_size=2 \\
        --work-root /tmp/ovshapes_table --out /tmp/ovshapes_table/table.md
"""
import argparse
import os
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO_ROOT)
from mmovss.io import UnsafeOutputError  # noqa: E402
from mmovss.ovshapes.table import (  # noqa: E402
    TableError,
    TableRunner,
    check_table_output,
    default_configs,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description='OVShapes table over several worlds')
    parser.add_argument('--configs', nargs='+', default=None,
                        help='config files (default: every config in configs/ovshapes)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[1, 2, 3],
                        help='world seeds (one world per seed)')
    parser.add_argument('--work-root', default='work_dirs/ovshapes_table',
                        help='folder of the worlds, runs and state file (rerun to resume)')
    parser.add_argument('--iters', type=int, default=None,
                        help="training iterations (default: each config's own)")
    parser.add_argument('--num-train', type=int, default=2000, help='train images per world')
    parser.add_argument('--num-val', type=int, default=200, help='val images per world')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='extra overrides for every train and test run')
    parser.add_argument('--train-cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='extra overrides for the train runs only, e.g. '
                        'train_dataloader.batch_size=2')
    parser.add_argument('--jobs', type=int, default=1,
                        help='cells run at the same time (results do not depend on it)')
    parser.add_argument('--threads', type=int, default=None,
                        help='OMP_NUM_THREADS of every run (default: inherited); e.g. '
                             '--jobs 2 --threads 1 on a 2-core machine')
    parser.add_argument('--out', default=None,
                        help='markdown file of the table (default: <work-root>/table.md); an '
                        'existing file is replaced only if this tool wrote it (checked '
                        'before the run)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out file that is not a table of this tool')
    parser.add_argument('--only-this-run', action='store_true',
                        help="the table of this run's --configs and --seeds alone (default: "
                        'every finished cell of --work-root, this run\'s configs first, so '
                        'that a run of other --configs on it keeps the rows of earlier runs)')
    args = parser.parse_args(argv)
    if args.iters is not None and args.iters < 1:
        parser.error('--iters must be >= 1')
    configs = args.configs or default_configs(REPO_ROOT)
    out = args.out or osp.join(args.work_root, 'table.md')
    try:
        check_table_output(out, configs, overwrite=args.overwrite)
    except UnsafeOutputError as err:
        sys.exit(f'run_table: {err}')
    try:
        runner = TableRunner(REPO_ROOT, args.work_root, configs, args.seeds, iters=args.iters,
                             num_train=args.num_train, num_val=args.num_val,
                             extra_options=args.cfg_options,
                             train_options=args.train_cfg_options, jobs=args.jobs,
                             threads=args.threads)
        failures = runner.run()
    except TableError as err:
        sys.exit(f'run_table: {err}')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(runner.render() if args.only_this_run else runner.work_root_table())
    print(f'table written to {out}', file=sys.stderr)
    if failures:
        sys.exit(f'run_table: {len(failures)} cell(s) failed (rerun to retry them):\n'
                 + '\n'.join(failures))


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: the runs were stopped (mmovss.ovshapes.table)
        sys.exit('run_table: interrupted; finished cells are kept, interrupted ones are '
                 'redone: rerun the same command to resume.')
