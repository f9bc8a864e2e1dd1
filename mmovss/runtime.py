"""Set-up shared by ``tools/train.py`` and ``tools/test.py``.

Loads a config with a clear error for a missing path, applies
``--cfg-options``, chooses the work directory as MMSegmentation does, and
falls back from NCCL to Gloo when CUDA is not available so that
``--launcher pytorch`` also works on CPU machines.

Runs in one process (the web UI, a notebook, the tests) get their own
logger, message hub and visualizer (:func:`name_run`). Two costs of
mmengine's runner are removed here, with the same results:
the config's text is formatted by yapf once per distinct text, not once per
log, dump and checkpoint (:func:`memoize_config_formatting`), and the
data-loader worker processes of a finished run are stopped at once rather
than when the garbage collector reaches them
(:func:`release_dataloader_workers`).
"""
import ast
import difflib
import itertools
import os
import os.path as osp
import pickle
import re
import zipfile
import zlib
from collections import OrderedDict
from typing import Optional

import torch

from mmovss.io.file_memo import memoised_per_file_version

from mmengine.config import Config
from mmengine.logging import print_log


def _similar_configs(path: str, limit: int = 3):
    folder = osp.dirname(path) or '.'
    if not osp.isdir(folder):
        return []
    names = [n for n in os.listdir(folder) if n.endswith('.py')]
    return [osp.join(folder, n) for n in
            difflib.get_close_matches(osp.basename(path), names, n=limit)]


def load_config(path: str, cfg_options=None) -> Config:
    """Reads a config file and merges ``--cfg-options`` into it.

    Args:
        path (str): Config file path.
        cfg_options (dict, optional): Dotted-key overrides.

    A ``clip_model`` / ``clip_pretrained`` variable that no CLIP part of the
    model uses is warned about (it was set where it changes nothing:
    :func:`mmovss.models.utils.clip_consistency.stale_clip_variables`).

    Raises:
        FileNotFoundError: The file does not exist (close matches are named).
    """
    if not osp.isfile(path):
        hint = _similar_configs(path)
        more = f' Did you mean: {", ".join(hint)}?' if hint else ''
        raise FileNotFoundError(
            f"Config file '{path}' does not exist.{more} Configs live under configs/<method>/.")
    memoize_config_formatting()
    cfg = Config.fromfile(path)
    if cfg_options:
        merge_cfg_options(cfg, cfg_options)
    from mmovss.models.utils.clip_consistency import stale_clip_variables
    for message in stale_clip_variables(cfg):
        print_log(f'WARNING: {message}', logger='current', level=30)
    return cfg


class DeviceUnavailableError(ValueError):
    """A device name this machine cannot run a model on (a misspelt name, CUDA
    without a usable GPU, a GPU index past the last one)."""


def _asked(device, option: str) -> str:
    """How the user asked: ``--device 'cuda'`` or ``device='cuda'``."""
    if isinstance(device, torch.device):
        device = str(device)
    return f'{option} {device!r}' if option.startswith('-') else f'{option}={device!r}'


def _cpu_fix(option: str) -> str:
    return f'{option} cpu' if option.startswith('-') else f"{option}='cpu'"


def device_problem(device, option: str = '--device'):
    """Why ``device`` cannot be used on this machine, or None.

    The one device check of every entry point: ``tools/demo.py``,
    ``tools/webui.py``, ``tools/analysis_tools/`` (``--device``) and
    :class:`~mmovss.apis.OpenVocabInferencer` (``device=``), before anything
    is built or downloaded. ``tools/train.py`` and ``tools/test.py`` have no
    device option: mmengine runs on CUDA when it is available, else on CPU.

    Args:
        device (str | torch.device): ``cpu``, ``cuda``, ``cuda:N``, ``mps``...
        option (str): How the caller names the setting in the message:
            ``'--device'`` (a command-line flag) or ``'device'`` (a keyword
            argument).

    Returns:
        str | None: A one-line message naming the device asked for and the
        fix (``--device cpu`` / ``device='cpu'``).
    """
    asked, cpu = _asked(device, option), _cpu_fix(option)
    leave_out = f'or leave {option} out to use a GPU when there is one'
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        hint = (" (PyTorch calls a GPU 'cuda')"
                if str(device).strip().lower().startswith('gpu') else '')
        return f'{asked} is not a device name{hint}; use cpu, cuda or cuda:N ({leave_out}).'
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            why = ('this PyTorch is built without CUDA' if torch.version.cuda is None
                   else 'no NVIDIA GPU or driver is found on this machine')
            return (f'{asked}: no CUDA device is available (torch.cuda.is_available() is '
                    f'False: {why}); use {cpu} (or leave {option} out).')
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            return (f'{asked}: this machine has {count} CUDA device(s), cuda:0 to '
                    f'cuda:{count - 1}; use one of them or {cpu}.')
        return None
    if parsed.type == 'cpu':
        return None
    backend = getattr(torch.backends, parsed.type, None) if parsed.type == 'mps' else \
        getattr(torch, parsed.type, None)
    available = getattr(backend, 'is_available', None)
    if not (callable(available) and available()):
        return f'{asked}: no {parsed.type} device is available here; use {cpu}.'
    return None


def check_device(device, option: str = '--device'):
    """``device`` if this machine can run a model on it (None: the default).

    Raises:
        DeviceUnavailableError: The message of :func:`device_problem`.
    """
    if device is None:
        return None
    problem = device_problem(device, option)
    if problem:
        raise DeviceUnavailableError(problem)
    return device


def exit_if_device_unusable(parser, device) -> None:
    """Ends a tool's argument parsing when ``--device`` cannot be used here.

    Prints :func:`device_problem`'s one line as ``error: ...`` and exits with
    code 2 (argparse's usage of every flag would be no help); nothing when
    ``device`` is None (the tool's default) or usable.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
        device (str | None): The parsed ``--device``.
    """
    problem = None if device is None else device_problem(device)
    if problem:
        parser.exit(2, f'error: {problem}\n')


def run_tool(main, argv=None) -> None:
    """Runs a tool's ``main(argv)`` as a command: a user error (a
    ``ValueError`` such as a refused output or missing weights, a missing
    file, an output that exists, weights that cannot be read or downloaded)
    ends with its one-line message and exit code 2 instead of a traceback
    (``MMOVSS_TRACEBACK=1`` shows it). Other exceptions keep their traceback."""
    import sys

    from mmovss.models.utils.open_clip_weights import WeightFileError
    try:
        main(argv)
    except (ValueError, FileNotFoundError, FileExistsError, WeightFileError) as err:
        if os.environ.get('MMOVSS_TRACEBACK'):
            raise
        print(f'error: {err}\n(MMOVSS_TRACEBACK=1 shows where it was raised)', file=sys.stderr)
        sys.exit(2)


def misspelt_option_keys(cfg, options) -> list:
    """Keys of ``options`` (dotted ``--cfg-options``) that add a new key next
    to a close existing one (``trian_cfg.max_iters``, ``model.test_cfg.mdoe``):
    ``(key, the new part, the close existing name)``. mmengine merges any new
    key silently, and most components ignore unknown ones."""
    found = []
    for key in options:
        node = cfg
        for part in str(key).split('.'):
            if isinstance(node, (list, tuple)) and part.isdigit():
                node = node[int(part)] if int(part) < len(node) else None
                continue
            if not hasattr(node, 'keys'):
                break
            if part in node.keys():
                node = node[part]
                continue
            names = [str(k) for k in node.keys()]
            close = [n for n in names if sorted(n) == sorted(part)] or \
                difflib.get_close_matches(part, names, n=1, cutoff=0.8)  # swapped letters, typos
            if close:
                found.append((key, part, close[0]))
            break
    return found


def check_fixed_vocabulary(cfg) -> None:
    """Makes a fixed vocabulary (``model.vocabulary``) checked against the
    datasets it is trained or tested on.

    :class:`~mmovss.engine.hooks.DatasetVocabularyHook` checks an explicit
    vocabulary against each dataset (class count, reordering), but the
    per-benchmark configs with a fixed name list do not add it. A child
    config that swaps the dataset by inheritance (VOC-21's SCLIP on
    ADE-150) then kept VOC's 21 names silently: every prediction is a valid
    ADE label. The hook is added where it is missing; it only checks when
    the vocabulary is fixed.
    """
    model = cfg.get('model') or {}
    inner = model.get('module', model) if isinstance(model, dict) else {}
    if not isinstance(inner, dict) or inner.get('vocabulary') is None:
        return
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(str(h.get('type', '')).split('.')[-1] == 'DatasetVocabularyHook'
               for h in hooks if isinstance(h, dict)):
        cfg.custom_hooks = hooks + [dict(type='DatasetVocabularyHook')]


def _not_a_dict_along(cfg, key: str):
    """``(prefix, value)`` of the first part of dotted ``key`` whose value
    in ``cfg`` is set but no dict (e.g. ``train_dataloader = None``)."""
    node, parts = cfg, key.split('.')
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, (dict, Config)) or part not in node:
            return None
        node = node[part]
        if not isinstance(node, (dict, Config)) and not (isinstance(node, (list, tuple))
                                               and parts[i + 1].isdigit()):
            return '.'.join(parts[:i + 1]), node
    return None


def merge_cfg_options(cfg, options) -> None:
    """``cfg.merge_from_dict(options)``, warning first about each key that
    looks misspelt (:func:`misspelt_option_keys`), naming the likely one.

    Raises:
        ValueError: A key below a value that is no dict, e.g.
            ``train_dataloader.dataset.data_root`` on a training-free
            config, whose ``train_dataloader`` is None (MMEngine's
            ``TypeError`` named no option).
    """
    for key, part, close in misspelt_option_keys(cfg, options):
        print_log(f'WARNING: --cfg-options {key}: the config has no {part!r} there, so it '
                  f'is added as a new key, which is likely ignored; did you mean {close!r}?',
                  logger='current', level=30)
    for key in options or {}:
        found = _not_a_dict_along(cfg, key)
        if found:
            prefix, value = found
            extra = (' (a training-free config has no training data: leave the train_* options '
                     'out)' if prefix.startswith('train_') and value is None else '')
            raise ValueError(f'--cfg-options {key}: the config sets {prefix} = {value!r}, '
                             f'which has no keys to set{extra}.')
    cfg.merge_from_dict(options)


_FORMATTED_MAX = 16


def memoize_config_formatting() -> None:
    """Formats each distinct config text with yapf once per process.

    mmengine's ``Config.pretty_text`` runs yapf's ``FormatCode`` on the whole
    config every time it is read: the runner reads it to log the config, to
    dump it into the work directory, for the visualizer and for every saved
    checkpoint's ``meta['cfg']``, about 0.1 to 1 s each on 2 CPU cores for
    this toolbox's configs. ``FormatCode`` is a pure function of its text and
    style, so its results are kept (the last 16 distinct inputs) and reused:
    the formatted text is the same string as before. Idempotent; a later
    replacement of ``FormatCode`` by someone else is left alone.
    """
    import mmengine.config.config as config_module
    if getattr(config_module.FormatCode, '_mmovss_memo', False):
        return
    format_code = config_module.FormatCode
    results = OrderedDict()

    def memoized_format_code(text, *args, **kwargs):
        # keyword names are unique: sorting never compares the (dict) values
        key = (text, repr(args), repr(sorted(kwargs.items())))
        if key in results:
            results.move_to_end(key)
            return results[key]
        result = format_code(text, *args, **kwargs)
        results[key] = result
        if len(results) > _FORMATTED_MAX:
            results.popitem(last=False)
        return result

    memoized_format_code._mmovss_memo = True
    memoized_format_code.__wrapped__ = format_code
    config_module.FormatCode = memoized_format_code


def release_dataloader_workers(runner) -> None:
    """Stops the worker processes of the runner's built data loaders now.

    A loader with ``persistent_workers=True`` (MMSegmentation's dataset bases)
    keeps its workers until the iterator is garbage collected; stopped from
    the collector, PyTorch's shutdown waits up to its 5 s status interval per
    worker for them to exit (measured: 10 s for 4 workers after a
    ``tools/test.py`` run in the same process, 0.04 s when stopped
    explicitly). Called at the end of ``tools/train.py`` and
    ``tools/test.py``, which may run in a process that goes on (the web UI, a
    notebook, the tests). Loops that were never built are skipped.
    """
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        loader = getattr(loop, 'dataloader', None)
        # persistent workers: the loader keeps its iterator; an iteration-based
        # training loop keeps its own (mmengine's _InfiniteDataloaderIterator)
        for owner in (loader, getattr(loop, 'dataloader_iterator', None)):
            iterator = getattr(owner, '_iterator', None)
            if hasattr(iterator, '_shutdown_workers'):
                iterator._shutdown_workers()
                if owner is loader:  # a later iteration starts new workers
                    loader._iterator = None


_RUNS_IN_PROCESS = itertools.count(1)


def name_run(cfg: Config) -> None:
    """Gives the second and later runs of a process an experiment name of their own.

    mmengine names a run ``<config name>_<timestamp>`` (or
    ``<experiment_name>_<timestamp>``), to the second, and shares its logger,
    message hub and visualizer by that name: a second runner built in the
    same process within the same second got the first one's, so its log went
    to the first run's work directory (and its scalars into the first run's
    message hub). The first run of a process keeps mmengine's name; the
    ``n``-th gets ``<name>_run<n>`` before the timestamp, and a visualizer
    named in the config (``'visualizer'``) ``<its name>_run<n>``. Called by
    ``tools/train.py`` and ``tools/test.py`` before the runner is built.
    """
    n = next(_RUNS_IN_PROCESS)
    if n == 1:
        return
    base = cfg.get('experiment_name')
    if base is None:
        base = osp.splitext(osp.basename(cfg.filename))[0] if cfg.filename else 'run'
    cfg.experiment_name = f'{base}_run{n}'
    visualizer = cfg.get('visualizer')
    if isinstance(visualizer, dict) and visualizer.get('name'):
        # a named visualizer is shared by name too: the second run's --show-dir
        # went to the first run's save_dir
        visualizer['name'] = f"{visualizer['name']}_run{n}"


def set_work_dir(cfg: Config, config_path: str, work_dir=None) -> None:
    """CLI ``--work-dir`` > ``work_dir`` in the file > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_launcher(cfg: Config, launcher: str, testing: bool = False) -> None:
    """Sets the launcher; uses the Gloo backend when NCCL cannot run here.

    Args:
        cfg (Config): The run's config.
        launcher (str): ``none``, ``pytorch``, ``slurm`` or ``mpi``.
        testing (bool): A test run (``tools/test.py``): without a
            ``model_wrapper_cfg`` of the config's, the model is wrapped in
            :class:`mmovss.engine.DistributedTestWrapper` instead of DDP,
            which refuses the models of training-free methods (they have no
            trainable parameter).
    """
    cfg.launcher = launcher
    if launcher == 'none':
        return
    check_launcher_environment(launcher, 'test.py' if testing else 'train.py')
    if testing and not cfg.get('model_wrapper_cfg'):
        cfg.model_wrapper_cfg = dict(type='DistributedTestWrapper')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if torch.cuda.is_available():
        return
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        print_log('CUDA is not available: using the gloo backend instead of nccl '
                  '(set env_cfg.dist_cfg.backend to choose).', logger='current')
        dist_cfg['backend'] = 'gloo'
    from .compat import allow_cpu_process_groups
    allow_cpu_process_groups()
    # DDP wraps CPU modules only without device ids.
    cfg.setdefault('model_wrapper_cfg', dict(type='MMDistributedDataParallel',
                                             device_ids=None, broadcast_buffers=False))


_LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_SIZE'),
}
"""The environment each launcher of MMEngine reads its rank from."""


def check_launcher_environment(launcher: str, tool: str = 'test.py') -> None:
    """``--launcher`` needs the environment its launcher sets.

    Args:
        launcher (str): ``pytorch``, ``slurm`` or ``mpi``.
        tool (str): ``test.py`` or ``train.py``, named in the fix.

    Raises:
        ValueError: A variable is missing (e.g. ``--launcher pytorch``
            typed without torchrun), naming the command that sets it; before,
            MMEngine ended in ``KeyError: 'RANK'``.
    """
    missing = [name for name in _LAUNCHER_ENV.get(launcher, ()) if name not in os.environ]
    if not missing:
        return
    script = {'test.py': 'dist_test.sh CONFIG CHECKPOINT N',
              'train.py': 'dist_train.sh CONFIG N'}[tool]
    starter = {'pytorch': f'bash tools/{script} (or python -m torch.distributed.run '
                          f'--nproc_per_node N tools/{tool} … --launcher pytorch)',
               'slurm': f'bash tools/slurm_{tool[:-3]}.sh … (srun sets them)',
               'mpi': f'mpirun -n N python tools/{tool} … --launcher mpi'}[launcher]
    raise ValueError(
        f'--launcher {launcher} needs the environment its launcher sets ({", ".join(missing)} '
        f'missing): start the processes with {starter}; for one process leave --launcher out.')


def close_process_group() -> None:
    """Waits for every rank, then destroys the default process group.

    Called at the end of ``tools/train.py`` and ``tools/test.py``: a Gloo
    group left to the interpreter's exit can abort a rank ("terminate called
    without an active exception", SIGABRT) after its work is done, which
    fails the whole launch. Does nothing outside distributed runs.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def export_local_rank(local_rank: int) -> None:
    """``torch.distributed.launch`` passes ``--local-rank``; mmengine reads the env."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)


# ----------------------------------------------------------------------------
# Checkpoints: completeness, resuming, strict loading

_STEP_FILE = re.compile(r'^(iter|epoch)_(\d+)\.pth$')


def step_checkpoints(work_dir: str) -> list:
    """The ``iter_N.pth`` / ``epoch_N.pth`` file names of a work dir, sorted."""
    if not osp.isdir(work_dir):
        return []
    return sorted(n for n in os.listdir(work_dir) if _STEP_FILE.match(n))
# (st_dev, st_ino, size, mtime_ns) of checkpoints whose CRCs were verified.
_SOUND_CHECKPOINTS = set()


def checkpoint_problem(path: str):
    """Why ``path`` is not a usable ``torch.save`` file, or None if it is.

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a file cut short while being written is not a readable zip. Every
    member of the archive carries a CRC-32, which is verified too (the file
    is read once): bytes flipped inside a tensor leave the zip structure
    intact and would otherwise load silently. Files in PyTorch's legacy
    format are tried with ``torch.load``.

    A file found sound is remembered by (inode, size, modification time),
    so checking it again (``tools/test.py`` checks before building the
    runner and again when loading) does not read it twice.

    Returns:
        str | None: A short reason (``'empty'``, ``'unreadable zip (…)'``,
        ``"CRC mismatch in member '…'"``) or None.
    """
    if not osp.isfile(path):
        return 'missing'
    st = os.stat(path)
    if st.st_size == 0:
        return 'empty'
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if identity in _SOUND_CHECKPOINTS:
        return None
    problem = _checkpoint_problem(path)
    if problem is None:
        _SOUND_CHECKPOINTS.add(identity)
    return problem


def _checkpoint_problem(path: str):
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                if not any(n.endswith('data.pkl') for n in archive.namelist()):
                    return 'a zip file without data.pkl (not written by torch.save)'
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
            return f'unreadable zip ({err})'
        if bad is not None:
            return (f"CRC mismatch in member '{bad}': its bytes changed after it was "
                    'written (disk or transfer corruption)')
        return None
    try:
        torch.load(path, map_location='cpu', weights_only=True)
        return None
    except Exception as err:  # noqa: BLE001 - any failure means unusable
        if _is_plain_pickle(path):
            return PLAIN_PICKLE
        return f'not a complete torch.save file ({type(err).__name__})'


#: :func:`checkpoint_problem` of a whole pickle that ``torch.save`` did not write.
PLAIN_PICKLE = 'a plain pickle, not a torch.save file'


def _is_plain_pickle(path: str) -> bool:
    """Whether ``path`` is a complete pickle of containers and NumPy arrays
    (e.g. a detectron2 model-zoo ``.pkl``), read by the restricted unpickler
    (nothing of the file runs)."""
    from mmovss.io import load_restricted_pickle
    try:
        load_restricted_pickle(path)
    except Exception:  # noqa: BLE001 - truncated, or objects beyond arrays: not that case
        return False
    return True


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole, uncorrupted ``torch.save`` file.

    See :func:`checkpoint_problem`.
    """
    return checkpoint_problem(path) is None


def check_checkpoint_file(path: str) -> None:
    """Raises a clear error for a missing, empty, truncated or corrupt file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist.")
    problem = checkpoint_problem(path)
    if problem == PLAIN_PICKLE:
        raise ValueError(
            f"Checkpoint '{path}' is {PLAIN_PICKLE} (e.g. a detectron2 .pkl of NumPy "
            'arrays): mmovss reads checkpoints with torch.load(weights_only=True) only. Pass '
            'the .pth file of the release, or convert the pickle once without running its '
            "code: d = mmovss.io.load_restricted_pickle(PATH); torch.save({'model': "
            "{k: torch.as_tensor(v) for k, v in d['model'].items()}}, 'model.pth').")
    if problem is not None:
        raise ValueError(
            f"Checkpoint '{path}' is truncated or corrupt ({problem}; was its writing "
            'interrupted, or the file damaged on disk or in transfer?). A downloaded file: '
            'download it again. One tools/train.py wrote: use an earlier checkpoint of the '
            'same work dir, or `tools/train.py CONFIG --resume` to pick the newest complete '
            'one.')


def load_checkpoint_safely(path: str) -> dict:
    """Loads a checkpoint for converters and tools, never running its code.

    The file is checked first (:func:`check_checkpoint_file`, CRC included)
    and read with ``torch.load(weights_only=True)``: tensors, containers,
    NumPy arrays and the mmengine classes allow-listed in
    :mod:`mmovss.compat`. A pickle that names any other global is refused.

    Raises:
        ValueError: The file is corrupt or holds objects outside the
            allow-list (the message names the file and the global).
    """
    check_checkpoint_file(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        detail = next((line for line in first if 'GLOBAL' in line or 'global' in line),
                      first[0] if first else '')
        raise ValueError(
            f"Checkpoint '{path}' holds objects that weights-only loading does not allow "
            f'({detail.strip()}); loading it fully could run code stored in the file, so it '
            'is refused. Use a checkpoint from a trusted source, or re-save only its '
            'state_dict (tensors) in an environment you trust.') from None



class InertObject:
    """Stand-in for a Python object a checkpoint pickles beside its tensors
    (e.g. PyTorch Lightning's callback classes used as dict keys, a
    hyper-parameter namespace): it takes any arguments and state and does
    nothing; never the real class."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def load_with_inert_objects(path: str) -> dict:
    """``torch.load(weights_only=True)`` with each global the file names
    replaced by an :class:`InertObject` subclass named after it: nothing of
    the file's code is imported or run, and the tensors load as they are.
    The caller checks the file first (:func:`check_checkpoint_file`)."""
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    stand_ins = [(type(name.rsplit('.', 1)[-1], (InertObject, ), {}), name) for name in unsafe]
    with torch.serialization.safe_globals(stand_ins):
        return torch.load(path, map_location='cpu', weights_only=True)


def find_resumable_checkpoint(work_dir: str):
    """The newest complete checkpoint of a work dir.

    Candidates are the file named in ``last_checkpoint`` (mmengine writes it
    after a checkpoint is complete) and every ``iter_N.pth``/``epoch_N.pth``;
    the most recently written one that is complete wins (ties: the higher
    N). By time, not by N: a work dir reused by a new, shorter run keeps the
    old run's higher ``iter_N`` files, which are older than the new run's.

    Returns:
        tuple[str | None, list[str]]: The checkpoint (None if there is none)
        and the incomplete files that were passed over.
    """
    def step_of(path):
        match = _STEP_FILE.match(osp.basename(path))
        return int(match.group(2)) if match else 0

    candidates = set()
    pointer = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named:
            candidates.add(named)
    if osp.isdir(work_dir):
        candidates.update(osp.join(work_dir, n) for n in os.listdir(work_dir)
                          if _STEP_FILE.match(n))
    def written(path):
        try:
            return os.stat(path).st_mtime_ns
        except OSError:
            return -1

    skipped = []
    for path in sorted(candidates, key=lambda p: (written(p), step_of(p)), reverse=True):
        if is_complete_checkpoint(path):
            return path, skipped
        if osp.exists(path):
            skipped.append(path)
    return None, skipped


class CheckpointMismatchError(RuntimeError, ValueError):
    """A checkpoint whose keys or tensor shapes do not fit the model.

    A ``RuntimeError`` as ``load_state_dict`` raises it, and a
    ``ValueError`` (a user error): :func:`run_tool` prints it in one line.
    """


_SIZE_MISMATCH = re.compile(
    r'size mismatch for ([^:\s]+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) '
    r'from checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)')


def _key_summary(missing, unexpected, shapes=()) -> str:
    """``N missing keys (e.g. …); M unexpected keys (…); K keys of another shape (…)``.

    Args:
        missing (list[str]): Keys of the model the checkpoint lacks.
        unexpected (list[str]): Keys of the checkpoint the model lacks.
        shapes (list[tuple]): ``(key, checkpoint shape, model shape)`` of
            keys both have with different shapes (e.g. a ViT-B/16 release
            loaded into a ViT-L/14 config, or a tiny test model).
    """
    summary = []
    for label, keys in (('missing', missing), ('unexpected', unexpected)):
        if keys:
            summary.append(f'{len(keys)} {label} keys (e.g. {", ".join(keys[:3])})')
    if shapes:
        shown = ', '.join(f'{k}: {tuple(a)} in the checkpoint, {tuple(b)} in the model'
                          for k, a, b in list(shapes)[:3])
        summary.append(f'{len(shapes)} keys of another shape (e.g. {shown})')
    return '; '.join(summary)


def _size_mismatches(text: str) -> list:
    """``(key, checkpoint shape, model shape)`` of the size mismatches that a
    ``load_state_dict`` message lists."""
    def shape(dims):
        return tuple(int(d) for d in dims.split(',') if d.strip())
    return [(k, shape(a), shape(b)) for k, a, b in _SIZE_MISMATCH.findall(text)]


def state_dict_mismatch(model, state) -> tuple:
    """``(missing, unexpected, shapes)`` of ``state`` against ``model``'s own
    state dict (:func:`_key_summary` describes the three lists)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [(k, tuple(state[k].shape), tuple(own[k].shape)) for k in own
              if k in state and torch.is_tensor(state[k]) and
              tuple(state[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, shapes


NON_STRICT_HINT = 'Pass --non-strict to load the matching weights anyway.'


def load_checkpoint_strictly(runner, path: str, strict: bool = True, inner: bool = False,
                             hint: str = '') -> None:
    """Loads weights for testing; refuses a checkpoint of another model.

    mmengine loads test checkpoints with ``strict=False`` and only logs the
    key mismatch, which silently evaluates a half-initialised model. Here a
    mismatch raises, with a summary of the missing and unexpected keys and
    of the tensors of another shape, unless ``strict=False`` is asked for.

    Args:
        runner: The built mmengine runner.
        path: Checkpoint file.
        strict: Refuse missing or unexpected keys.
        inner: Load into ``runner.model.module`` (a test-time-augmentation
            wrapper around the segmentor).
        hint (str): What the caller's user can do about a mismatch, appended
            to the error (``tools/test.py``: :data:`NON_STRICT_HINT`; other
            tools have no such flag).

    Raises:
        CheckpointMismatchError: Keys or shapes that do not fit (one line).
    """
    check_checkpoint_file(path)

    def load(strict_):
        if inner:
            from mmengine.runner import load_checkpoint
            load_checkpoint(runner.model.module, path, map_location='cpu', strict=strict_,
                            revise_keys=[(r'^module\.', '')])
            runner._has_loaded = True
        else:
            runner.load_checkpoint(path, strict=strict_)

    if not strict:
        load(False)
        return
    try:
        load(True)
    except RuntimeError as err:
        text = str(err)

        def keys(pattern):
            found = re.findall(pattern, text)
            return [k.strip() for k in found[0].split(',')] if found else []

        detail = _key_summary(keys(r'missing keys in source state_dict: (.*)'),
                              keys(r'unexpected key in source state_dict: (.*)'),
                              _size_mismatches(text))
        detail = detail or text.splitlines()[0]
        raise CheckpointMismatchError(
            f"Checkpoint '{path}' does not fit the model of this config: {detail}. "
            'It was probably trained with another config or method.'
            + (f' {hint}' if hint else '')) from None


def _literal(node):
    """The value of a config literal (``dict(...)``, lists, tuples, constants);
    ValueError for anything else (nothing of the text is executed)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        values = [_literal(e) for e in node.elts]
        return values if isinstance(node, ast.List) else tuple(values)
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == 'dict' and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    raise ValueError(f'not a literal: {ast.dump(node)[:60]}')


def checkpoint_meta(path: str) -> dict:
    """The ``meta`` dict of an mmengine checkpoint, read with
    ``torch.load(weights_only=True, mmap=True)`` (no tensor data is read,
    nothing of the file runs); ``{}`` for a file without one or one this
    cannot read (the strict loaders report unreadable files). Memoised per
    (path, size, mtime): ``tools/test.py`` asks it three times (training
    classes, training settings, the release a converted file came from).
    Callers read the dict, they do not change it."""
    try:
        return _checkpoint_meta(path)
    except OSError:
        return {}


@memoised_per_file_version
def _checkpoint_meta(path: str) -> dict:
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001
        checkpoint = None
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta if isinstance(meta, dict) else {}


def checkpoint_config_value(path: str, name: str):
    """The top-level value ``name`` of the config a checkpoint was trained
    with (its ``meta.cfg`` text, read as literals: nothing of it runs), or
    None."""
    try:
        text = checkpoint_meta(path)['cfg']
        for statement in ast.parse(text).body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
                    getattr(statement.targets[0], 'id', None) == name:
                return _literal(statement.value)
    except Exception:  # noqa: BLE001 - no meta, no cfg, not literals: nothing to compare
        return None
    return None


def checkpoint_model_config(path: str):
    """The ``model`` dict of the config a checkpoint was trained with, or None
    (:func:`checkpoint_config_value`)."""
    return checkpoint_config_value(path, 'model')


def warn_if_resumed_with_another_batch_size(cfg) -> Optional[str]:
    """``--resume`` with another ``train_dataloader.batch_size`` than the run
    was trained with: mmengine advances the data by iterations (of the new
    size), and the learning-rate schedule, written for the old batch, goes on
    as it is; accepted, but said.

    Returns:
        str | None: The warning logged, or None (the same size, or unknown).
    """
    trained = checkpoint_config_value(cfg.load_from, 'train_dataloader')
    before = trained.get('batch_size') if isinstance(trained, dict) else None
    now = (cfg.get('train_dataloader') or {}).get('batch_size')
    if not (isinstance(before, int) and isinstance(now, int) and before != now):
        return None
    message = (f'--resume: {cfg.load_from} was trained with train_dataloader.batch_size='
               f'{before}, this run uses {now}: the remaining iterations see {now} images '
               f'each, the learning-rate schedule goes on as written for {before}, and the '
               f'data already seen is skipped by iterations (of the new size). Resume with '
               f'--cfg-options train_dataloader.batch_size={before} to continue the run as '
               f'it was.')
    print_log(f'WARNING: {message}', logger='current', level=30)
    return message


#: Model settings that differ between training and test on purpose (weights
#: sources, caches, the vocabulary, inference settings).
_SETTINGS_NOT_COMPARED = ('pretrained', 'init_cfg', 'cache_dir', 'vocabulary', 'test_cfg',
                          'train_cfg', 'data_preprocessor', 'checkpoint', 'seen_vocabulary')


def model_setting_differences(trained: dict, current: dict, prefix: str = 'model') -> list:
    """``(key, trained value, current value)`` of the model settings that differ
    (those of :data:`_SETTINGS_NOT_COMPARED` aside)."""
    found = []
    for key in sorted(set(trained) | set(current), key=str):
        if any(word in str(key) for word in _SETTINGS_NOT_COMPARED):
            continue
        a, b = trained.get(key, '<unset>'), current.get(key, '<unset>')
        if isinstance(a, dict) and isinstance(b, dict):
            found += model_setting_differences(a, b, f'{prefix}.{key}')
        elif (list(a) if isinstance(a, tuple) else a) != (list(b) if isinstance(b, tuple) else b):
            found.append((f'{prefix}.{key}', a, b))
    return found


def warn_if_trained_with_other_settings(path: str, model_cfg) -> list:
    """Warns when the checkpoint's training config set the model otherwise
    (e.g. NACLIP's last block vs ClearCLIP's: the weights load, the numbers
    are another model's); returns the differences."""
    trained = checkpoint_model_config(path)
    if not isinstance(trained, dict):
        return []
    current = model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else dict(model_cfg)
    differences = model_setting_differences(trained, current)
    if differences:
        shown = '; '.join(f'{k}: {a!r} (trained) vs {b!r} (this config)'
                          for k, a, b in differences[:5])
        print_log(f'WARNING: {path} was trained with other model settings than this config '
                  f'({len(differences)}: {shown}). Its weights load, but the results are '
                  'not those of the trained model unless this is intended; test with the '
                  'config it was trained with.', logger='current', level=30)
    return differences


def load_model_checkpoint_strictly(model, path: str, absent_prefixes=(), hint: str = '') -> None:
    """:func:`load_checkpoint_strictly` for a bare model (no runner).

    The same file check and strict key check as ``tools/test.py``; used by
    the benchmark tools (:mod:`mmovss.benchmarking`) and for released
    checkpoints (:mod:`mmovss.apis.released_weights`).

    Args:
        model: The model (not a DDP/TTA wrapper).
        path: Checkpoint file.
        absent_prefixes (tuple[str]): Key prefixes the checkpoint may lack
            because the config fills them from a named pretrained source at
            build time (e.g. the CLIP towers of a released ZegFormer, which
            ships without them; the converter module says so). Every other
            key must be present, and no key may be unexpected.
        hint (str): Appended to a mismatch error (see
            :func:`load_checkpoint_strictly`).
    """
    if absent_prefixes:
        check_checkpoint_file(path)
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
        state = checkpoint.get('state_dict', checkpoint)
        missing, unexpected, shapes = state_dict_mismatch(model, state)
        missing = [k for k in missing if not k.startswith(tuple(absent_prefixes))]
        if missing or unexpected or shapes:  # checked before: a size mismatch raised
            raise CheckpointMismatchError(  # torch's many-line error
                f"Checkpoint '{path}' does not fit the model of this config: "
                f'{_key_summary(missing, unexpected, shapes)}. It was probably released '
                'for another config or method.' + (f' {hint}' if hint else ''))
        model.load_state_dict(state, strict=False)
        return
    from types import SimpleNamespace
    holder = SimpleNamespace(model=SimpleNamespace(module=model))
    load_checkpoint_strictly(holder, path, strict=True, inner=True, hint=hint)


def check_resume_checkpoint_fits(model, path: str) -> None:
    """Refuses to resume from a checkpoint of another model, naming the keys.

    mmengine resumes with ``strict=False`` (the key mismatch is only logged)
    and then fails on the optimizer state with ``loaded state dict has a
    different number of parameter groups``, which says nothing about the
    cause. Here the checkpoint's ``state_dict`` keys are compared with the
    model's before anything is loaded (the file is memory-mapped, not read
    into memory).

    Raises:
        RuntimeError: ``Checkpoint '…' does not fit the model of this config:
            N missing keys (e.g. …); M unexpected keys (e.g. …) …``.
    """
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}

    def plain(keys):
        return {k[len('module.'):] if k.startswith('module.') else k for k in keys}

    theirs = plain(state.keys())
    ours = plain(getattr(model, 'module', model).state_dict().keys())
    missing, unexpected = sorted(ours - theirs), sorted(theirs - ours)
    if missing or unexpected:
        raise RuntimeError(
            f"Checkpoint '{path}' does not fit the model of this config: "
            f'{_key_summary(missing, unexpected)}. It was probably trained with another config '
            'or method; --resume needs a checkpoint written by this config (use load_from '
            'with --cfg-options to start from other weights).')


# ----------------------------------------------------------------------------
# Output paths: every folder a tool writes is checked by mmovss.io

def dataset_folders(dataset_cfg) -> list:
    """Folders and files of a dataset config that outputs must never touch.

    ``data_root``, every ``data_prefix`` folder (joined with ``data_root``
    when relative, as mmengine does) and ``ann_file``; wrappers
    (``dataset=``/``datasets=``) are followed.
    """
    found = []
    if not isinstance(dataset_cfg, dict):
        return found
    for key in ('dataset', 'datasets'):
        inner = dataset_cfg.get(key)
        for item in (inner if isinstance(inner, (list, tuple)) else [inner]):
            found += dataset_folders(item)
    root = dataset_cfg.get('data_root') or ''
    if isinstance(root, str) and root:
        found.append(root)
    prefix = dataset_cfg.get('data_prefix') or {}
    entries = list(prefix.values()) if isinstance(prefix, dict) else []
    entries.append(dataset_cfg.get('ann_file') or '')
    for entry in entries:
        if isinstance(entry, str) and entry:
            found.append(entry if osp.isabs(entry) or not root else osp.join(root, entry))
    return found


def config_dataset_folders(cfg: Config) -> list:
    """:func:`dataset_folders` of every train/val/test dataloader of ``cfg``."""
    found = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader') or {}
        if isinstance(loader, dict):
            found += dataset_folders(loader.get('dataset'))
    return list(dict.fromkeys(found))


def check_output_paths(cfg: Config, out=None, overwrite: bool = False, show_dir=None) -> None:
    """The output-path guard of ``tools/train.py`` and ``tools/test.py``.

    No output may lie inside a dataset folder of the config (see
    :func:`config_dataset_folders`); ``--out`` must also be empty or new
    unless ``overwrite`` (see :func:`mmovss.io.check_output_dir`). The work
    dir may hold earlier runs (``--resume`` reuses it).

    Raises:
        mmovss.io.UnsafeOutputError: Naming the option, the path and the fix.
    """
    from .io import check_output_dir
    protected = config_dataset_folders(cfg)
    check_output_dir(cfg.work_dir, protected_dirs=protected, require_empty=False,
                     flag='--work-dir')
    if show_dir:
        check_output_dir(show_dir, protected_dirs=protected, require_empty=False,
                         flag='--show-dir')
    if out is not None:
        check_output_dir(out, overwrite=overwrite, protected_dirs=protected, flag='--out')
