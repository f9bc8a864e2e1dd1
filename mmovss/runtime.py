"""Set-up shared by ``tools/train.py`` and ``tools/test.py``.

Loads a config with a clear error for a missing path, applies
``--cfg-options``, chooses the work directory as MMSegmentation does, and
falls back from NCCL to Gloo when CUDA is not available so that
``--launcher pytorch`` also works on CPU machines.
"""
import difflib
import os
import os.path as osp

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
    if dist_cfg.get('backend', 'nccl') == 'nccl' and not torch.cuda.is_available():
        print_log('CUDA is not available: using the gloo backend instead of nccl '
                  '(set env_cfg.dist_cfg.backend to choose).', logger='current')
        dist_cfg['backend'] = 'gloo'


def export_local_rank(local_rank: int) -> None:
    """``torch.distributed.launch`` passes ``--local-rank``; mmengine reads the env."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
