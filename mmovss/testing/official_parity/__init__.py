"""Parity with the official code of trained methods: fixture format and checks.

A fixture is made by ``tools/parity/<method>_reference.py --official-repo DIR
--seed N --out DIR``: it runs the method's *official* code on CPU with tiny
random weights and writes one folder::

    <out>/meta.json       method, seed, sizes, class names, official config
                          values, tolerances, the generator command
    <out>/state_dict.pth  the official model's state dict (official keys)
    <out>/arrays.npz      ``input/<name>`` arrays and ``stage/<name>`` outputs

``tests/test_official_parity.py`` reads every fixture under
``$MMOVSS_OFFICIAL_PARITY_DIR`` (default: ``tests/data/official_parity``; one
sub-folder per method, each holding one or more fixture folders), converts the
state dict with the package's converter, loads it strictly into our model and
asks ``mmovss.testing.official_parity.<method>.run_fixture`` for a
:class:`ParityReport`. Every ``stage/`` array of the fixture must be compared
(:meth:`ParityReport.missing_stages`).
"""
import importlib
import json
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

__all__ = ['FIXTURE_ENV', 'DEFAULT_ATOL', 'MIN_LABEL_AGREEMENT', 'Fixture', 'ParityReport',
           'default_fixture_root', 'fixture_root', 'list_fixtures', 'load_fixture',
           'write_fixture', 'run_fixture']

FIXTURE_ENV = 'MMOVSS_OFFICIAL_PARITY_DIR'
DEFAULT_ATOL = 1e-4
MIN_LABEL_AGREEMENT = 0.999


def default_fixture_root() -> str:
    """``tests/data/official_parity`` of the repository."""
    package = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return osp.join(osp.dirname(package), 'tests', 'data', 'official_parity')


def fixture_root() -> str:
    """``$MMOVSS_OFFICIAL_PARITY_DIR`` if set, else :func:`default_fixture_root`."""
    return os.environ.get(FIXTURE_ENV) or default_fixture_root()


def list_fixtures(method: str, root: Optional[str] = None) -> List[str]:
    """Fixture folders (holding ``meta.json``) of one method under ``root``."""
    base = osp.join(root or fixture_root(), method)
    if osp.isfile(osp.join(base, 'meta.json')):
        return [base]
    if not osp.isdir(base):
        return []
    return sorted(osp.join(base, name) for name in os.listdir(base)
                  if osp.isfile(osp.join(base, name, 'meta.json')))


@dataclass
class Fixture:
    """One fixture folder, loaded.

    Attributes:
        path (str): The folder.
        meta (dict): ``meta.json``.
        state_dict (dict): The official state dict (official keys).
        inputs (dict): ``input/<name>`` arrays, without the prefix.
        stages (dict): ``stage/<name>`` arrays, without the prefix.
    """
    path: str
    meta: dict
    state_dict: Dict[str, torch.Tensor]
    inputs: Dict[str, np.ndarray]
    stages: Dict[str, np.ndarray]


def write_fixture(out_dir: str, meta: dict, state_dict: Dict[str, torch.Tensor],
                  inputs: Dict[str, np.ndarray], stages: Dict[str, np.ndarray]) -> None:
    """Writes a fixture folder (see the module docstring)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    torch.save({k: v.detach().cpu().clone() for k, v in state_dict.items()},
               osp.join(out_dir, 'state_dict.pth'))
    arrays = {f'input/{k}': np.asarray(v) for k, v in inputs.items()}
    arrays.update({f'stage/{k}': np.asarray(v) for k, v in stages.items()})
    np.savez_compressed(osp.join(out_dir, 'arrays.npz'), **arrays)


def load_fixture(path: str) -> Fixture:
    """Reads a fixture folder written by :func:`write_fixture`.

    Raises:
        FileNotFoundError: A file of the fixture is missing (names it).
    """
    for name in ('meta.json', 'state_dict.pth', 'arrays.npz'):
        if not osp.isfile(osp.join(path, name)):
            raise FileNotFoundError(
                f'{osp.join(path, name)} is missing: a fixture folder holds meta.json, '
                f'state_dict.pth and arrays.npz; regenerate it with the tools/parity/ '
                f'generator named in its README.')
    with open(osp.join(path, 'meta.json')) as f:
        meta = json.load(f)
    state_dict = torch.load(osp.join(path, 'state_dict.pth'), map_location='cpu',
                            weights_only=True)
    with np.load(osp.join(path, 'arrays.npz'), allow_pickle=False) as data:
        inputs = {k[len('input/'):]: data[k] for k in data.files if k.startswith('input/')}
        stages = {k[len('stage/'):]: data[k] for k in data.files if k.startswith('stage/')}
    return Fixture(path, meta, state_dict, inputs, stages)


@dataclass
class ParityReport:
    """Per-stage differences between our model and the official outputs.

    Attributes:
        diffs (dict): stage name -> max absolute difference.
        atols (dict): stage name -> tolerance used.
        label_agreement (dict): name -> fraction of equal labels.
    """
    diffs: Dict[str, float] = field(default_factory=dict)
    atols: Dict[str, float] = field(default_factory=dict)
    label_agreement: Dict[str, float] = field(default_factory=dict)

    def compare(self, name: str, ours, official, atol: float = DEFAULT_ATOL) -> float:
        """Records ``max |ours - official|`` for a stage (shapes must match)."""
        ours = _numpy(ours)
        official = _numpy(official)
        if ours.shape != official.shape:
            raise AssertionError(f'stage {name!r}: our shape {ours.shape} != official '
                                 f'{official.shape}')
        diff = float(np.abs(ours.astype(np.float64) - official.astype(np.float64)).max()) \
            if ours.size else 0.0
        self.diffs[name] = diff
        self.atols[name] = atol
        return diff

    def compare_labels(self, name: str, ours, official, decided=None) -> float:
        """Records the fraction of equal labels for a label-map stage.

        ``decided`` (optional boolean map of the labels' shape): only these
        pixels count, those whose official scores separate the best class
        from the second by more than the scores' tolerance; at the others
        (ties within the tolerance) float rounding may pick either class.
        """
        ours = _numpy(ours)
        official = _numpy(official)
        if ours.shape != official.shape:
            raise AssertionError(f'labels {name!r}: our shape {ours.shape} != official '
                                 f'{official.shape}')
        equal = ours == official
        if decided is not None:
            equal = equal[_numpy(decided).astype(bool)]
        agreement = float(equal.mean()) if equal.size else 1.0
        self.label_agreement[name] = agreement
        return agreement

    def missing_stages(self, fixture: Fixture) -> List[str]:
        """Fixture stages that were neither compared nor label-checked."""
        seen = set(self.diffs) | set(self.label_agreement)
        return sorted(set(fixture.stages) - seen)

    def failures(self, min_agreement: float = MIN_LABEL_AGREEMENT) -> List[str]:
        """Human-readable failures (empty when everything is within tolerance)."""
        out = [f'{k}: max abs diff {v:.3g} > {self.atols[k]:.1g}'
               for k, v in self.diffs.items() if not v <= self.atols[k]]
        out += [f'{k}: {v:.4%} labels equal < {min_agreement:.1%}'
                for k, v in self.label_agreement.items() if not v >= min_agreement]
        return out


def magnitude_atol(official, atol: float = DEFAULT_ATOL) -> float:
    """``atol`` for a stage of values larger than 1: scaled by its largest
    magnitude (float32 rounding is relative; e.g. mask logits of order 10
    differ by ~1.6e-4 between an AMD and an Intel CPU's kernels)."""
    official = _numpy(official)
    return atol * max(1.0, float(np.abs(official).max()) if official.size else 1.0)


def decided_pixels(scores, margin: float, axis: int = 0) -> np.ndarray:
    """Pixels whose best score beats the second by more than ``margin``."""
    top2 = np.sort(_numpy(scores).astype(np.float64), axis=axis)
    top2 = np.take(top2, [-1, -2], axis=axis)
    return (np.take(top2, 0, axis=axis) - np.take(top2, 1, axis=axis)) > margin


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float().numpy() if x.is_floating_point() \
            else x.detach().cpu().numpy()
    return np.asarray(x)


def run_fixture(method: str, path: str) -> ParityReport:
    """Runs ``mmovss.testing.official_parity.<method>.run_fixture`` on one fixture."""
    module = importlib.import_module(f'{__name__}.{method}')
    return module.run_fixture(load_fixture(path))
