"""The OVShapes results table over several generated worlds (issue #22).

For every world seed a world is generated (:func:`mmovss.ovshapes.writer.write_world`);
every config is trained with ``tools/train.py`` (training-free configs are
skipped) and tested with ``tools/test.py``, each as a subprocess with its own
``--work-dir`` under ``work_root/cells/<config>/seed<k>/``. The test metrics are
read from the json that mmengine's ``LoggerHook`` writes after testing
(``<work-dir>/<timestamp>/<timestamp>.json``), not from the log.

Layout of ``work_root``::

    state.json                        settings + every finished cell
    worlds/seed<k>/                   the world (plus worlds/seed<k>.json when complete)
    cells/<config>/seed<k>/train/     train work dir (checkpoint iter_<N>.pth)
    cells/<config>/seed<k>/test/      test work dir (metrics json)
    cells/<config>/seed<k>/result.json   written last: the cell is finished

A rerun skips every cell whose ``result.json`` exists and redoes the others
from scratch (an interrupted cell's train/test dirs are removed first), so the
table can be built in several sessions. A finished cell records a fingerprint
of its resolved config (:func:`config_fingerprint`; each file that the config
or the run's options name, e.g. the tiny CLIP weights, by its content) and its
world's options; a rerun with a config that changed since (the file, a base
it inherits, another file of the same name, or a file it names) is refused
instead of reporting the old cell under the new config, and so is a world of
other sizes (the val images depend on ``num_train`` too). The written table
holds every finished cell of the work root (:meth:`TableRunner.work_root_table`),
so runs of other configs on it add rows instead of replacing the table.
The table reports mean +- sample standard deviation (n - 1) over the worlds
of mIoU_seen, mIoU_unseen, hIoU and the wall and CPU time of the training
subprocess, and for trained configs how much the training loss still fell over
the second half of the schedule
(:mod:`mmovss.ovshapes.convergence`), with the mean loss curves below the table.
"""
import hashlib
import json
import os
import os.path as osp
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .convergence import CONVERGED_DROP, CurveError, curves_markdown, late_drop, read_loss_curve

METRICS = ('mIoU_seen', 'mIoU_unseen', 'hIoU')
COLUMNS = (('seen', 'mIoU_seen'), ('unseen', 'mIoU_unseen'), ('hIoU', 'hIoU'))
STATE_FILE = 'state.json'


class TableError(RuntimeError):
    """A setting or a run that the table tool cannot go on with."""


#: The command-line flag of each setting of a work root (``state.json``).
_SETTING_FLAGS = dict(iters='--iters', num_train='--num-train', num_val='--num-val',
                      extra_options='--cfg-options', train_options='--train-cfg-options')


def _show_setting(value) -> str:
    if value is None:
        return '(not given)'
    if isinstance(value, (list, tuple)):
        return shlex.join(map(str, value)) if value else '(none)'
    return str(value)


def _write_json(path: Path, obj) -> None:
    """Writes ``obj`` atomically (a crash leaves the old file or none)."""
    # one temporary name per process and thread: runs sharing a work root never
    # write into each other's temporary file
    tmp = path.with_name(f'{path.name}.{os.getpid()}.{threading.get_ident()}.tmp')
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + '\n')
    os.replace(tmp, path)


#: The header line of every table :meth:`TableRunner.render` writes; an
#: existing ``--out`` file that has it is this tool's own and may be replaced.
TABLE_HEADER = ('| config | training | worlds | seen | unseen | hIoU | training time (s) | '
                'training CPU time (s) | loss fall, last half (%) |')


def check_table_output(out: str, configs: Sequence[str], overwrite: bool = False) -> None:
    """Checks the table file before the runs (which take hours).

    ``out`` may be new or a table this tool wrote (it holds
    :data:`TABLE_HEADER`: a rerun refreshes it); any other existing file
    (a README, notes) only with ``overwrite``; never a folder or one of the
    ``configs``.

    Raises:
        mmovss.io.UnsafeOutputError: Naming the path and the fix.
    """
    from mmovss.io import check_output_file
    own_table = False
    if osp.isfile(out):
        try:
            with open(out, encoding='utf-8') as f:
                own_table = TABLE_HEADER in f.read(1 << 20)
        except (OSError, UnicodeDecodeError):
            own_table = False
    check_output_file(out, overwrite=overwrite or own_table, protected_files=configs,
                      flag='--out')


def config_name(config: str) -> str:
    return osp.splitext(osp.basename(config))[0]


#: A config line that keeps a config out of the default table: configs that
#: are not one train + test cell (OVSeg's prompt-tuning run, or the config
#: that tests the checkpoint merged from two runs).
NOT_A_CELL = 'table_cell = False'


def default_configs(repo_root) -> List[str]:
    """Every config in ``configs/ovshapes`` (paths relative to the
    repository), except those with a :data:`NOT_A_CELL` line."""
    folder = Path(repo_root) / 'configs' / 'ovshapes'
    return [f'configs/ovshapes/{p.name}' for p in sorted(folder.glob('*.py'))
            if not any(line.strip().startswith(NOT_A_CELL)
                       for line in p.read_text().splitlines())]


def _named_file(value: str, base_dir=None) -> Optional[str]:
    """The normalised path of the existing file a config string names, or None.

    A relative path is taken from ``base_dir`` (the repository root, where the
    table runs its subprocesses), not from the directory the tool was started
    in; None: from the current directory."""
    if not value:
        return None
    path = value if base_dir is None or osp.isabs(value) else osp.join(str(base_dir), value)
    return osp.normpath(path) if osp.isfile(path) else None


def named_files(value, base_dir=None) -> Dict[str, str]:
    """``{normalised path: sha256}`` of every file that a (nested) config
    value names: weights, vocabulary or class files."""
    found = {}
    _with_file_contents(value, base_dir, found)
    return found


def _with_file_contents(value, base_dir=None, found: Optional[Dict[str, str]] = None):
    """``value`` with every string that names an existing file replaced by
    the file's sha256 (weights, vocabulary files): a new tiny CLIP under the
    same path changes the fingerprint, a moved checkout does not. The files
    go into ``found`` (``{normalised path: sha256}``) when it is given."""
    from mmovss.models.utils.open_clip_weights import file_sha256
    if isinstance(value, dict):
        return {k: _with_file_contents(v, base_dir, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_with_file_contents(v, base_dir, found) for v in value]
    if isinstance(value, str):
        path = _named_file(value, base_dir)
        if path is not None:
            sha = file_sha256(path)  # memoised per version (path, size, mtimes)
            if found is not None:
                found[path] = sha
            return f'file sha256:{sha}'
    return value


def config_fingerprint(cfg, base_dir=None) -> str:
    """The sha256 of a loaded config's resolved content (its bases merged),
    each file it names (weights, vocabularies) by its content.

    Two files with the same content give the same fingerprint; an edit of the
    file, of a base it inherits or of a file it names (e.g. a new tiny CLIP
    in ``mmovss/assets``) changes it. Relative file paths are taken from
    ``base_dir`` (None: the current directory).
    """
    resolved = _with_file_contents(cfg.to_dict(), base_dir)
    text = json.dumps(resolved, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _shown(path: str, repo_root) -> str:
    """A path relative to the repository if inside it (as the commands write it)."""
    try:
        return str(Path(path).resolve().relative_to(Path(repo_root).resolve()))
    except ValueError:
        return str(path)


def option_files(options: Sequence[str], repo_root) -> Dict[str, str]:
    """``{path: sha256}`` of the files that ``--cfg-options`` values name
    (e.g. ``model.backbone.pretrained=work_dirs/my_clip.pt``), each value
    parsed as the train and test tools parse it; relative paths from
    ``repo_root``, where the runs start."""
    from mmengine.config import DictAction
    found = {}
    for option in options:
        if '=' not in str(option):
            continue
        value = DictAction._parse_iterable(str(option).split('=', 1)[1])
        for path, sha in named_files(value, repo_root).items():
            found[_shown(path, repo_root)] = sha
    return found


def with_option_files(info: dict, files: Dict[str, str]) -> dict:
    """``info`` of :func:`config_info` with the files that the run's options
    name folded into its fingerprint (unchanged without such files, so cells
    of earlier runs keep theirs) and listed in its ``files``."""
    if not files or info.get('fingerprint') is None:
        return info
    text = json.dumps([info['fingerprint'], sorted(files.values())])
    return dict(info, fingerprint=hashlib.sha256(text.encode()).hexdigest(),
                files={**info.get('files', {}), **files})


def config_info(config: str, repo_root) -> dict:
    """Whether ``config`` trains, its ``max_iters`` and ``param_scheduler``,
    the dotted keys of its dataset roots, its :func:`config_fingerprint` and
    the files it names (``files``: ``{path: sha256}``)."""
    from mmengine.config import Config
    path = config if osp.isabs(config) else osp.join(repo_root, config)
    if not osp.isfile(path):
        raise TableError(f"--configs: '{config}' does not exist (configs live in "
                         'configs/ovshapes/)')
    cfg = Config.fromfile(path)
    trained = cfg.get('train_dataloader') is not None
    roots = {split: _data_root_keys(cfg.get(f'{split}_dataloader') or {},
                                    f'{split}_dataloader')
             for split in ('train', 'val', 'test')}
    if not roots['test'] or (trained and not roots['train']):
        raise TableError(f'{config}: its dataloaders name no data_root to point at a world')
    files = {_shown(p, repo_root): sha for p, sha in named_files(cfg.to_dict(),
                                                                 repo_root).items()}
    info = dict(trained=trained, max_iters=None, schedulers=[],
                fingerprint=config_fingerprint(cfg, repo_root), files=files,
                test_roots=roots['val'] + roots['test'],
                train_roots=roots['train'] + roots['val'] + roots['test'])
    if trained:
        info['max_iters'] = int(cfg.train_cfg['max_iters'])
        scheds = cfg.get('param_scheduler') or []
        if isinstance(scheds, dict):
            scheds = [scheds]
        info['schedulers'] = [dict(begin=s.get('begin', 0), end=s.get('end'),
                                   by_epoch=s.get('by_epoch', True)) for s in scheds]
    return info


def _data_root_keys(node, prefix: str) -> List[str]:
    """Dotted keys of every ``data_root`` in a (possibly wrapped) dataset config,
    e.g. ``train_dataloader.dataset.datasets.1.data_root`` in a ``ConcatDataset``."""
    keys = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root':
                keys.append(f'{prefix}.data_root')
            elif key != 'pipeline':
                keys += _data_root_keys(value, f'{prefix}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            keys += _data_root_keys(value, f'{prefix}.{i}')
    return keys


def option_key(option: str) -> str:
    """The dotted key of a ``KEY=VALUE`` ``--cfg-options`` entry."""
    return str(option).split('=', 1)[0].strip()


def check_world_options(options: Sequence[str], root_keys: Sequence[str] = (),
                        flag: str = '--cfg-options') -> None:
    """Refuses options that would move a cell's data away from its world.

    The table points every dataset root at the world of the cell's seed
    (:func:`data_root_options`) and reports the cell under that world; an
    option that sets a dataloader's ``data_root`` (or replaces a dict that
    holds one, e.g. ``test_dataloader.dataset=...``) comes later on the
    command line and wins, so the cell would train or test on other data.

    Raises:
        TableError: Naming the option and the fix.
    """
    for option in options:
        key = option_key(option)
        parts = key.split('.')
        sets_root = parts[-1] == 'data_root' and any(p.endswith('_dataloader') for p in parts)
        holds_root = any(k.startswith(key + '.') for k in root_keys)
        if sets_root or holds_root:
            raise TableError(
                f"{flag} {option}: the table points every dataset at the world of each "
                'seed (worlds/seed<k>) and reports the cell under that world; this option '
                'would move the data elsewhere. Drop it (the worlds are set by --seeds, '
                '--num-train and --num-val).')


def data_root_options(root: str, keys: Sequence[str]) -> List[str]:
    """``--cfg-options`` pointing the dataset roots ``keys`` at a world."""
    return [f'{k}={root}' for k in keys]


def train_options(info: dict, iters: Optional[int]) -> List[str]:
    """``--cfg-options`` of a training run: no validation while training (the
    cell is tested afterwards, so the training time excludes evaluation), one
    checkpoint at the end, and with ``iters`` the schedule shortened to it
    (iteration-based scheduler bounds scaled by ``iters / max_iters``)."""
    n = info['max_iters'] if iters is None else int(iters)
    opts = [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
            f'train_cfg.val_begin={n + 1}', f'default_hooks.checkpoint.interval={n}']
    if iters is not None and n != info['max_iters']:
        scale = n / info['max_iters']
        for i, s in enumerate(info['schedulers']):
            if s['by_epoch'] or s['end'] is None:
                continue
            begin = min(int(round(s['begin'] * scale)), n - 1)
            end = max(min(int(round(s['end'] * scale)), n), begin + 1)
            opts += [f'param_scheduler.{i}.begin={begin}', f'param_scheduler.{i}.end={end}']
    return opts


def read_test_metrics(test_dir: Path) -> Dict[str, float]:
    """The metrics of the newest ``<timestamp>/<timestamp>.json`` in a test work dir."""
    found = sorted(p for p in Path(test_dir).glob('*/*.json')
                   if p.stem == p.parent.name)
    if not found:
        raise TableError(f'no metrics json (<timestamp>/<timestamp>.json) in {test_dir}')
    data = json.loads(found[-1].read_text())
    missing = [k for k in ('mIoU',) + METRICS if k not in data]
    if missing:
        raise TableError(f'{found[-1]} lacks {missing}: does the config evaluate with '
                         'OpenVocabIoUMetric and unseen_classes?')
    return {k: float(data[k]) for k in ('mIoU',) + METRICS}


def summarize(values: Sequence[float]) -> tuple:
    """(mean, sample std); the std of a single value is reported as 0."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std


def mean_std_cell(values: Sequence[float], digits: int) -> str:
    """``'mean +- std'`` of a table cell; one value alone is shown without a spread
    (never ``'+- 0.00'``)."""
    mean, std = summarize(values)
    return f'{mean:.{digits}f} +- {std:.{digits}f}' if len(values) > 1 else f'{mean:.{digits}f}'


def wait_with_cpu_time(proc: subprocess.Popen) -> Tuple[int, Optional[float]]:
    """Waits for ``proc``; returns its exit code and its CPU time (s).

    The CPU time is the user + system time of that one child (and of the
    children it waited for) from ``os.wait4``, so cells run at the same time
    (``--jobs``) do not count each other's time; None where ``os.wait4`` is
    missing (Windows), after a plain ``wait``.
    """
    if not hasattr(os, 'wait4'):
        return proc.wait(), None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def _process_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def mean_curve(curves: Sequence[Sequence[Sequence[float]]]) -> List[tuple]:
    """The pointwise mean of several loss curves over the iterations they all logged."""
    common = set.intersection(*({int(i) for i, _ in c} for c in curves))
    maps = [{int(i): float(v) for i, v in c} for c in curves]
    return [(i, statistics.mean(m[i] for m in maps)) for i in sorted(common)]


class TableRunner:
    """Runs (or resumes) the grid of configs x world seeds and renders the table.

    Args:
        repo_root: The repository (holds ``tools/`` and ``configs/``).
        work_root: Folder of the worlds, runs and state file.
        configs: Config paths (relative to ``repo_root`` or absolute).
        seeds: World seeds.
        iters: Training iterations (None: each config's own ``max_iters``).
        num_train, num_val: World size.
        extra_options: ``--cfg-options`` added to every train and test run.
        train_options: ``--cfg-options`` added to every train run only.
        log: Progress callback (one line per call).
        python: Interpreter of the subprocesses.
        jobs: Cells run at the same time (each a subprocess; worlds are
            generated first). Results do not depend on it.
        threads: ``OMP_NUM_THREADS`` of every subprocess (None: inherited).
            On a small machine, ``jobs=2, threads=1`` keeps two cores busy
            with the tiny models better than one run on two threads.
    """

    def __init__(self, repo_root, work_root, configs, seeds, iters=None, num_train=2000,
                 num_val=200, extra_options=(), train_options=(), log: Callable[[str], None] = None,
                 python: str = sys.executable, jobs: int = 1, threads: Optional[int] = None):
        self.repo_root = Path(repo_root).resolve()
        self.work_root = Path(work_root).resolve()
        self.configs = list(configs)
        self.seeds = [int(s) for s in seeds]
        if not self.configs or not self.seeds:
            raise TableError('need at least one config (--configs) and one seed (--seeds)')
        repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        if repeated:
            raise TableError(f'--seeds: {" ".join(map(str, repeated))} given more than once; '
                             'each seed is one world and a table averages distinct worlds. '
                             'Give each seed once.')
        names = {}
        for config in self.configs:
            other = names.setdefault(config_name(config), config)
            if other != config or self.configs.count(config) > 1:
                raise TableError(
                    f'--configs: {other} and {config} share the name '
                    f"'{config_name(config)}', which names the cell folders and the table "
                    'row; give each config once, under its own file name.')
        self.iters = iters
        self.num_train, self.num_val = int(num_train), int(num_val)
        if self.num_val < 1 or self.num_train < 0:
            raise TableError(f'--num-train {self.num_train} --num-val {self.num_val}: every '
                             'cell is tested on the val images of its world; give --num-val '
                             '>= 1 and --num-train >= 0.')
        self.extra_options = list(extra_options)
        self.train_options = list(train_options)
        check_world_options(self.extra_options, flag='--cfg-options')
        check_world_options(self.train_options, flag='--train-cfg-options')
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.python = python
        if int(jobs) < 1 or (threads is not None and int(threads) < 1):
            raise TableError(f'--jobs ({jobs}) and --threads ({threads}) must be >= 1')
        self.jobs = int(jobs)
        self.threads = None if threads is None else int(threads)
        self._lock = threading.Lock()
        self.settings = dict(iters=iters, num_train=self.num_train, num_val=self.num_val,
                             extra_options=self.extra_options,
                             train_options=self.train_options)

    # -- paths and commands ------------------------------------------------
    def _show(self, path) -> str:
        """A path as written in the commands: relative to the repository if inside it."""
        path = Path(path)
        try:
            return str(path.relative_to(self.repo_root))
        except ValueError:
            return str(path)

    def world_dir(self, seed: int) -> Path:
        return self.work_root / 'worlds' / f'seed{seed}'

    def cell_dir(self, config: str, seed: int) -> Path:
        return self.work_root / 'cells' / config_name(config) / f'seed{seed}'

    def world_command(self, seed: int) -> List[str]:
        return ['python', 'tools/ovshapes/make_dataset.py', '--out',
                self._show(self.world_dir(seed)), '--seed', str(seed),
                '--num-train', str(self.num_train), '--num-val', str(self.num_val)]

    def cell_commands(self, config: str, seed: int, info: dict) -> Dict[str, List[str]]:
        cell = self.cell_dir(config, seed)
        root = self._show(self.world_dir(seed))
        data = data_root_options(root, info['test_roots'])
        cmds = {}
        test = ['python', 'tools/test.py', config]
        if info['trained']:
            n = info['max_iters'] if self.iters is None else int(self.iters)
            cmds['train'] = ['python', 'tools/train.py', config, '--work-dir',
                             self._show(cell / 'train'), '--cfg-options',
                             *data_root_options(root, info['train_roots']),
                             *train_options(info, self.iters), *self.extra_options,
                             *self.train_options]
            test.append(self._show(cell / 'train' / f'iter_{n}.pth'))
        cmds['test'] = [*test, '--work-dir', self._show(cell / 'test'),
                        '--cfg-options', *data, *self.extra_options]
        return cmds

    def config_infos(self, configs: Sequence[str]) -> Dict[str, dict]:
        """:func:`config_info` of each config, its fingerprint also over the
        files that this run's options name (:func:`with_option_files`:
        ``--cfg-options``, and for a trained config ``--train-cfg-options``)."""
        files = {False: option_files(self.extra_options, self.repo_root),
                 True: option_files(self.extra_options + self.train_options, self.repo_root)}
        infos = {}
        for config in configs:
            info = config_info(config, self.repo_root)
            infos[config] = with_option_files(info, files[bool(info.get('trained'))])
        return infos

    # -- state -------------------------------------------------------------
    def _check_settings(self) -> None:
        """Refuses a run whose settings differ from those of the work root's
        earlier runs (its worlds and finished cells belong to those)."""
        path = self.work_root / STATE_FILE
        if not path.exists():
            return
        old = json.loads(path.read_text()).get('settings')
        if old is None or old == self.settings:
            return
        differ = [f'{_SETTING_FLAGS.get(k, k)} {_show_setting(old.get(k))} (this run: '
                  f'{_show_setting(self.settings.get(k))})'
                  for k in sorted(set(old) | set(self.settings))
                  if old.get(k) != self.settings.get(k)]
        raise TableError(
            f'{self.work_root} holds runs made with other settings: {"; ".join(differ)}. '
            'Its worlds and finished cells belong to those settings (a world is its seed '
            'and its sizes: the val images depend on --num-train too). Rerun with the same '
            'settings to resume it, or use another --work-root for these.')

    def world_options(self, seed: int) -> dict:
        """What a world is generated from (its marker ``worlds/seed<k>.json``,
        and the ``world`` of every cell run on it)."""
        return dict(seed=int(seed), num_train=self.num_train, num_val=self.num_val)

    def check_world(self, seed: int) -> None:
        """Refuses a complete world on disk generated with other options.

        The validation images depend on ``--num-train`` as well (one random
        stream), so such a world is another world; regenerating it would
        leave the cells finished on the old one to be reported with the new.

        Raises:
            TableError: Naming both sets of options and the fix.
        """
        marker = self.world_dir(seed).with_suffix('.json')
        if not marker.exists():
            return
        have, want = json.loads(marker.read_text()), self.world_options(seed)
        if have != want:
            raise TableError(
                f'{self._show(self.world_dir(seed))} was generated with --num-train '
                f"{have.get('num_train')} --num-val {have.get('num_val')}, this run asks "
                f'for --num-train {self.num_train} --num-val {self.num_val} (the val images '
                'depend on --num-train too, so it is another world) and the cells finished '
                'on it belong to it. Rerun with its options, or use another --work-root '
                f'for these (or delete {self._show(self.world_dir(seed))}, its .json and '
                'the cells of that seed to start the world over).')

    def load_results(self, configs: Optional[Sequence[str]] = None,
                     seeds: Optional[Sequence[int]] = None) -> Dict[str, Dict[int, dict]]:
        """Finished cells: ``{config: {seed: result}}`` (default: of this run's grid)."""
        results = {}
        for config in self.configs if configs is None else configs:
            for seed in self.seeds if seeds is None else seeds:
                path = self.cell_dir(config, seed) / 'result.json'
                if path.exists():
                    results.setdefault(config, {})[seed] = json.loads(path.read_text())
        return results

    def _write_state(self) -> None:
        """``state.json``: the settings and every finished cell of the work root.

        Every ``cells/<config>/seed<k>/result.json`` on disk is listed, not only
        this run's grid, so that runs of other configs or seeds on the same work
        root (one after another or at the same time) never drop each other's
        cells from the state.
        """
        cells = {}
        for path in sorted((self.work_root / 'cells').glob('*/seed*/result.json')):
            cells[f'{path.parent.parent.name}/{path.parent.name}'] = json.loads(path.read_text())
        _write_json(self.work_root / STATE_FILE, dict(settings=self.settings, cells=cells))

    def check_configs(self, infos: Dict[str, dict]) -> None:
        """Checks the run against the configs before anything runs.

        Refuses options that replace a dict holding a dataset root
        (:func:`check_world_options`), worlds without training images for a
        trained config, and finished cells run with another version of their
        config (:func:`config_fingerprint`; cells of older runs recorded none
        and are kept): their result would be reported for the config as it is
        now, and the commands in the table would not reproduce it.

        Raises:
            TableError: Naming the input and the fix.
        """
        for config, info in infos.items():
            keys = info.get('train_roots', []) + info.get('test_roots', [])
            check_world_options(self.extra_options, keys, '--cfg-options')
            check_world_options(self.train_options, keys, '--train-cfg-options')
            if info.get('trained') and self.num_train < 1:
                raise TableError(f'--num-train {self.num_train}: {config} trains on the '
                                 'train images of each world; give --num-train >= 1.')
        stale = []
        for config, by_seed in self.load_results().items():
            for seed, result in sorted(by_seed.items()):
                why = self.stale_reason(seed, result, infos[config])
                if why is not None:
                    stale.append(f'{self._show(self.cell_dir(config, seed))}: {why}')
        if stale:
            raise TableError(
                f'{"; ".join(stale)}. Its result would be reported for the config as it '
                'is now. Delete these cell folders to rerun them, or use another '
                '--work-root to keep them.')

    def stale_reason(self, seed: int, result: dict, info: dict) -> Optional[str]:
        """Why a finished cell no longer stands for its config as it is now
        (None: it does).

        It was run on a world of other options (cells record their ``world``),
        or its :func:`config_fingerprint` differs (the config, a base it inherits,
        another file of the same name, or a file that it or the run's options
        name, e.g. the tiny CLIP weights, changed since; the changed files are
        named where the cell recorded them). Cells of older runs recorded no
        fingerprint and are kept.
        """
        world = result.get('world')
        if world is not None and world != self.world_options(seed):
            return (f"finished on another world (--num-train {world.get('num_train')} "
                    f"--num-val {world.get('num_val')}; this run: --num-train "
                    f'{self.num_train} --num-val {self.num_val})')
        then, now = result.get('config_sha256'), info.get('fingerprint')
        if then is None or now is None or then == now:
            return None
        old, new = result.get('config_files'), info.get('files') or {}
        changed = sorted(p for p in set(old or {}) | set(new)
                         if (old or {}).get(p) != new.get(p))
        if old is not None and changed:
            what = f'changed since: {", ".join(changed)}'
        elif old is not None:
            what = 'changed since: the config, a base it inherits, or another file of the same name'
        else:
            what = ('changed since: the config, a base it inherits, another file of the same '
                    'name, or a file it names, e.g. the tiny CLIP weights')
        return f'finished with another version of the config ({what})'

    # -- running -----------------------------------------------------------
    def ensure_world(self, seed: int) -> Path:
        """Generates the world of ``seed`` unless it is on disk (a complete
        world of other options is refused, :meth:`check_world`)."""
        from .writer import write_world
        root, marker = self.world_dir(seed), self.world_dir(seed).with_suffix('.json')
        want = self.world_options(seed)
        self.check_world(seed)
        if marker.exists():
            return root
        self.log(f'world seed {seed}: generating {self.num_train} train + {self.num_val} '
                 f'val images in {root}')
        if root.exists():  # an interrupted generation: start over
            shutil.rmtree(root)
        write_world(root, seed=seed, num_train=self.num_train, num_val=self.num_val)
        _write_json(marker, want)
        return root

    def _run(self, cmd: List[str], log_path: Path) -> Tuple[float, Optional[float]]:
        """Runs one command from the repository root.

        Returns:
            tuple: Its wall time (s) and its CPU time (s; user + system of the
            subprocess and the children it waited for, e.g. data-loader
            workers; None where ``os.wait4`` is missing). Unlike the wall
            time, the CPU time is not inflated by other jobs sharing the cores
            or by the subprocess being stopped (SIGSTOP) for a while.
        """
        env = dict(os.environ)
        if self.threads is not None:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        start = time.perf_counter()
        with open(log_path, 'w') as log:
            proc = subprocess.Popen([self.python, *cmd[1:]], cwd=self.repo_root,
                                    stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                returncode, cpu = wait_with_cpu_time(proc)
            except BaseException:  # e.g. Ctrl-C: never leave the run behind
                proc.kill()
                proc.wait()
                raise
        elapsed = time.perf_counter() - start
        if returncode != 0:
            tail = ''.join(log_path.read_text().splitlines(True)[-15:])
            raise TableError(f'{" ".join(cmd)} failed (exit {returncode}); log '
                             f'{log_path}:\n{tail}')
        return elapsed, cpu

    def _lock_path(self, config: str, seed: int) -> Path:
        cell = self.cell_dir(config, seed)
        return cell.parent / f'{cell.name}.lock'

    def claim_cell(self, config: str, seed: int) -> Optional[str]:
        """Takes a cell for this process, or says why not (None: taken).

        Several runs may share a work root (other configs or seeds, started
        at other times). A cell is not run when its result appeared after
        this run listed the pending cells (another run finished it), nor while
        another live process holds its lock file (``seed<k>.lock`` beside the
        cell, created atomically, holding the process id); a lock left by a
        process that no longer exists (an interrupted run) is taken over.
        Without this, a run would wipe a cell that another run had finished
        or was training.
        """
        if (self.cell_dir(config, seed) / 'result.json').exists():
            return 'finished by another run meanwhile, skipped'
        lock = self._lock_path(config, seed)
        lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _process_alive(pid):
                    return f'being run by process {pid} ({lock}), skipped'
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, 'w') as f:
                f.write(str(os.getpid()))
            if (self.cell_dir(config, seed) / 'result.json').exists():
                lock.unlink(missing_ok=True)  # finished between the checks
                return 'finished by another run meanwhile, skipped'
            return None
        return f'could not take the lock {lock}, skipped'

    def run_cell(self, config: str, seed: int, info: dict) -> dict:
        """Runs one cell (the caller holds its lock, :meth:`claim_cell`)."""
        cell = self.cell_dir(config, seed)
        if cell.exists():  # interrupted earlier: redo from scratch
            shutil.rmtree(cell)
        cell.mkdir(parents=True)
        cmds = self.cell_commands(config, seed, info)
        started = time.time()
        train_time = train_cpu = None
        if 'train' in cmds:
            train_time, train_cpu = self._run(cmds['train'], cell / 'train.log')
        self._run(cmds['test'], cell / 'test.log')
        result = dict(config=config, seed=seed, trained=info['trained'],
                      metrics=read_test_metrics(cell / 'test'), train_time_s=train_time,
                      train_cpu_s=train_cpu,
                      loss_curve=self._loss_curve(cell) if info['trained'] else None,
                      commands={k: shlex.join(v) for k, v in cmds.items()},
                      config_sha256=info.get('fingerprint'), config_files=info.get('files'),
                      world=self.world_options(seed),
                      started=started, finished=time.time(), threads=self.threads)
        _write_json(cell / 'result.json', result)
        return result

    @staticmethod
    def _loss_curve(cell: Path) -> Optional[List[List[float]]]:
        """The training loss curve of a cell, or None where none was logged."""
        try:
            return [[i, v] for i, v in read_loss_curve(cell / 'train')]
        except CurveError:
            return None

    def curve_of(self, result: dict) -> Optional[List[List[float]]]:
        """A finished cell's loss curve (from its result, else read from its train dir)."""
        if result.get('loss_curve') is not None:
            return result['loss_curve']
        if not result.get('trained'):
            return None
        return self._loss_curve(self.cell_dir(result['config'], result['seed']))

    def run(self) -> List[str]:
        """Runs every unfinished cell; returns the error messages of failed cells."""
        infos = self.config_infos(self.configs)  # checks them
        self._check_settings()
        self.check_configs(infos)
        self._infos = infos
        self.work_root.mkdir(parents=True, exist_ok=True)
        self._write_state()
        total = len(self.configs) * len(self.seeds)
        done = sum(len(v) for v in self.load_results().values())
        self.log(f'{done}/{total} cells already finished in {self.work_root}')
        pending, k = [], 0
        for seed in self.seeds:
            for config in self.configs:
                k += 1
                tag = f'[{k}/{total}] {config_name(config)} seed {seed}'
                if (self.cell_dir(config, seed) / 'result.json').exists():
                    self.log(f'{tag}: finished earlier, skipped')
                    continue
                pending.append((tag, config, seed))
        pending_seeds = sorted({seed for _, _, seed in pending})
        for seed in pending_seeds:  # all refusals before any world is generated
            self.check_world(seed)
        for seed in pending_seeds:
            self.ensure_world(seed)
        failures = []

        def run_one(item):
            tag, config, seed = item
            why_not = self.claim_cell(config, seed)
            if why_not is not None:
                self.log(f'{tag}: {why_not}')
                return
            what = ('train + test' if infos[config]['trained'] else 'test (training-free)')
            self.log(f'{tag}: {what} ...')
            start = time.perf_counter()
            try:
                result = self.run_cell(config, seed, infos[config])
            except TableError as err:
                with self._lock:
                    failures.append(str(err))
                self.log(f'{tag}: FAILED: {err}')
                return
            finally:
                self._lock_path(config, seed).unlink(missing_ok=True)
            m = result['metrics']
            self.log(f'{tag}: done in {time.perf_counter() - start:.0f} s: seen '
                     f"{m['mIoU_seen']:.2f} unseen {m['mIoU_unseen']:.2f} "
                     f"hIoU {m['hIoU']:.2f}")
            with self._lock:
                self._write_state()

        if self.jobs == 1:
            for item in pending:
                run_one(item)
        else:
            with ThreadPoolExecutor(max_workers=self.jobs) as pool:
                list(pool.map(run_one, pending))
        return failures

    # -- the table ---------------------------------------------------------
    def render(self, configs: Optional[Sequence[str]] = None,
               seeds: Optional[Sequence[int]] = None,
               results: Optional[Dict[str, Dict[int, dict]]] = None,
               notes: Sequence[str] = ()) -> str:
        """The markdown table (finished cells only) and the exact commands.

        Args:
            configs, seeds: The rows and worlds (default: this run's).
            results: Their finished cells (default: read from the work root).
            notes: Lines under the table's intro (e.g. cells left out).
        """
        configs = list(self.configs if configs is None else configs)
        seeds = list(self.seeds if seeds is None else seeds)
        if results is None:
            results = self.load_results(configs, seeds)
        it = 'own max_iters' if self.iters is None else f'{self.iters} iterations'
        lines = [
            f'OVShapes, {len(seeds)} worlds (seeds {", ".join(map(str, seeds))}; '
            f'{self.num_train} train / {self.num_val} val images each), training: {it}. '
            'mIoU in %, mean +- sample std over the worlds; training time = wall time of '
            '`tools/train.py` (s), and its CPU time (s; user + system of the process, '
            'not inflated by other jobs on the cores; "-" for cells run before it was '
            'recorded).', '', *[f'{n}  ' for n in notes], *([''] if notes else []),
            TABLE_HEADER,
            '| --- | --- | --- | --- | --- | --- | --- | --- | --- |']
        curves = {}
        for config in configs:
            by_seed = results.get(config, {})
            if not by_seed:
                lines.append(f'| `{config_name(config)}` | | 0/{len(seeds)} | | | | | | |')
                continue
            rows = list(by_seed.values())
            cells = [mean_std_cell([r['metrics'][key] for r in rows], 2) for _, key in COLUMNS]
            trained = rows[0]['trained']
            t_cell = cpu_cell = drop_cell = '-'
            if trained:
                t_cell = mean_std_cell([r['train_time_s'] for r in rows], 0)
                cpu = [r.get('train_cpu_s') for r in rows]
                if None not in cpu:  # every world's (older cells did not record it)
                    cpu_cell = mean_std_cell(cpu, 0)
                runs = [c for c in (self.curve_of(r) for r in rows) if c]
                drops = [100 * d for d in (late_drop(c) for c in runs) if d is not None]
                if drops:
                    drop_cell = mean_std_cell(drops, 0)
                if runs:
                    curves[config_name(config)] = mean_curve(runs)
            lines.append(f'| `{config_name(config)}` | {"yes" if trained else "none"} | '
                         f'{len(rows)}/{len(seeds)} | {" | ".join(cells)} | {t_cell} | '
                         f'{cpu_cell} | {drop_cell} |')
        if curves:
            lines += ['', 'Training loss (the logged window means), mean over the worlds; '
                      '"loss fall, last half": fall of a least-squares line through the '
                      'second half of each curve, relative to its end value '
                      '(`mmovss.ovshapes.convergence.late_drop`; about 0: flattened, '
                      f'converged below {100 * CONVERGED_DROP:.0f} %).', '',
                      curves_markdown(curves)]
        lines += ['', 'Commands (run from the repository root):', '', '```bash']
        lines += [' '.join(self.world_command(s)) for s in seeds]
        for config in configs:
            for seed in seeds:
                r = results.get(config, {}).get(seed)
                if r is not None:
                    lines += [r['commands'][k] for k in ('train', 'test') if k in r['commands']]
        lines += ['```', '']
        return '\n'.join(lines)

    def work_root_table(self) -> str:
        """The table of every finished cell of the work root (what
        ``run_table.py`` writes unless ``--only-this-run``): this run's configs
        first, then those that only earlier runs on the work root finished (in
        name order); this run's seeds, or with worlds that only earlier runs
        used, all seeds in order.

        Without this, a run of other ``--configs`` on the work root (to add
        or redo a row) rewrote ``table.md`` with its own rows only. A cell of
        an earlier run that no longer stands for its config as it is now
        (:meth:`stale_reason`), or whose config cannot be loaded, is left out
        with a log line and a note under the table's intro.
        """
        configs, seeds = list(self.configs), list(self.seeds)
        results = self.load_results()  # this run's grid: checked before it ran
        by_name = {config_name(c): c for c in configs}
        infos = dict(getattr(self, '_infos', {}))
        extra_seeds, left_out = set(), []
        for path in sorted((self.work_root / 'cells').glob('*/seed*/result.json')):
            cell = self._show(path.parent)
            try:
                result = json.loads(path.read_text())
                config, seed = str(result['config']), int(result['seed'])
            except (OSError, ValueError, KeyError, TypeError) as err:
                left_out.append(f'{cell} (its result.json cannot be read: {err!r})')
                continue
            config = by_name.get(path.parent.parent.name, config)
            if seed in results.get(config, {}):
                continue
            if config not in infos:
                try:
                    infos[config] = self.config_infos([config])[config]
                except Exception as err:  # a config deleted or broken since
                    infos[config] = err
            info = infos[config]
            why = (f'its config {config} cannot be loaded now: {info}'
                   if isinstance(info, Exception) else self.stale_reason(seed, result, info))
            if why is not None:
                left_out.append(f'{cell} ({why})')
                continue
            if path.parent.parent.name not in by_name:
                by_name[path.parent.parent.name] = config
                configs.append(config)
            if seed not in seeds:
                extra_seeds.add(seed)
            results.setdefault(config, {})[seed] = result
        if extra_seeds:  # worlds of earlier runs too: all in order
            seeds = sorted(set(seeds) | extra_seeds)
        earlier = [config_name(c) for c in configs[len(self.configs):]]
        if earlier or extra_seeds:
            self.log(f'table of the work root: besides this run, {len(earlier)} config(s) '
                     f'({", ".join(earlier) or "-"}) and world seed(s) '
                     f'({", ".join(map(str, sorted(extra_seeds))) or "-"}) finished by '
                     "earlier runs on it (--only-this-run: this run's grid alone)")
        for line in left_out:
            self.log(f'table: left out {line}; to redo it, delete the cell folder and run '
                     'its config again')
        notes = [f'Left out: {line}.' for line in left_out]
        return self.render(configs, seeds, results, notes)
