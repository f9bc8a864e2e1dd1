"""Set-up shared by ``tools/train.py`` and ``tools/test.py``.

Loads a config with a clear error for a missing path, applies
``--cfg-options``, chooses the work directory as MMSegmentation does, and
falls back from NCCL to Gloo when CUDA is not available so that
``--launcher pytorch`` also works on CPU machines.
"""
import difflib
import os
import os.path as osp
import re
import zipfile

import torch
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

    Raises:
        FileNotFoundError: The file does not exist (close matches are named).
    """
    if not osp.isfile(path):
        hint = _similar_configs(path)
        more = f' Did you mean: {", ".join(hint)}?' if hint else ''
        raise FileNotFoundError(
            f"Config file '{path}' does not exist.{more} Configs live under configs/<method>/.")
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def set_work_dir(cfg: Config, config_path: str, work_dir=None) -> None:
    """CLI ``--work-dir`` > ``work_dir`` in the file > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def set_launcher(cfg: Config, launcher: str) -> None:
    """Sets the launcher; uses the Gloo backend when NCCL cannot run here."""
    cfg.launcher = launcher
    if launcher == 'none':
        return
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


def is_complete_checkpoint(path: str) -> bool:
    """Whether ``path`` is a whole ``torch.save`` file (not truncated).

    ``torch.save`` writes a zip archive whose central directory comes last,
    so a file cut short while being written is not a readable zip. Files in
    PyTorch's legacy format are tried with ``torch.load``.
    """
    if not osp.isfile(path) or osp.getsize(path) == 0:
        return False
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return any(n.endswith('data.pkl') for n in archive.namelist())
        except (zipfile.BadZipFile, OSError):
            return False
    try:
        torch.load(path, map_location='cpu', weights_only=True)
        return True
    except Exception:  # noqa: BLE001 - any failure means unusable
        return False


def check_checkpoint_file(path: str) -> None:
    """Raises a clear error for a missing, empty, truncated or corrupt file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"Checkpoint '{path}' does not exist.")
    if not is_complete_checkpoint(path):
        raise ValueError(
            f"Checkpoint '{path}' is truncated or corrupt (not a complete torch.save "
            'file; was its writing interrupted?). Use an earlier checkpoint of the same '
            'work dir, or `tools/train.py CONFIG --resume` to pick the newest complete one.')


def find_resumable_checkpoint(work_dir: str):
    """The newest complete checkpoint of a work dir.

    Candidates are the file named in ``last_checkpoint`` (mmengine writes it
    after a checkpoint is complete) and every ``iter_N.pth``/``epoch_N.pth``;
    the one with the highest N that is complete wins.

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
    skipped = []
    for path in sorted(candidates, key=step_of, reverse=True):
        if is_complete_checkpoint(path):
            return path, skipped
        if osp.exists(path):
            skipped.append(path)
    return None, skipped


def load_checkpoint_strictly(runner, path: str, strict: bool = True, inner: bool = False) -> None:
    """Loads weights for testing; refuses a checkpoint of another model.

    mmengine loads test checkpoints with ``strict=False`` and only logs the
    key mismatch, which silently evaluates a half-initialised model. Here a
    mismatch raises, with a summary of the missing and unexpected keys,
    unless ``strict=False`` is asked for.

    Args:
        runner: The built mmengine runner.
        path: Checkpoint file.
        strict: Refuse missing or unexpected keys.
        inner: Load into ``runner.model.module`` (a test-time-augmentation
            wrapper around the segmentor).
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
        missing = re.findall(r'missing keys in source state_dict: (.*)', text)
        unexpected = re.findall(r'unexpected key in source state_dict: (.*)', text)
        summary = []
        for label, found in (('missing', missing), ('unexpected', unexpected)):
            keys = [k.strip() for k in found[0].split(',')] if found else []
            if keys:
                summary.append(f'{len(keys)} {label} keys (e.g. {", ".join(keys[:3])})')
        detail = '; '.join(summary) or text.splitlines()[0]
        raise RuntimeError(
            f"Checkpoint '{path}' does not fit the model of this config: {detail}. "
            'It was probably trained with another config or method. Pass --non-strict '
            'to load the matching weights anyway.') from None
