"""Side-by-side time of mmovss and the official code of CorrCLIP and Trident.

The official repositories ship their own ``open_clip`` (and Trident its own
``segment_anything``) package, which cannot share a process with the
installed ``open_clip`` that mmovss uses. The official side therefore runs in
a subprocess: the parity-fixture generator of the method
(``tools/parity/<method>_reference.py``, which builds the official segmentor
on CPU in float32 with the tiny random CLIP of ``../shared/parity/A``, a tiny
random DINO and, for Trident, a tiny random SAM, and runs its ``predict`` on
one image) is executed with the official segmentor class's ``predict``
wrapped by a timer. The wrapper is installed when the class is created
(``builtins.__build_class__``), so nothing of the official code is edited
and no per-call profiling hook slows it down. The generator's recording
hooks (a few ``clone()`` of stage tensors) stay in the timed call; they
favour ours, if anything.

Our side builds our model from the same fixture (same weights, classes,
image, slide window and thresholds: ``mmovss.testing.corrclip_trident_runs``
``CorrCLIPRun`` / ``TridentRun``) and times one ``predict`` on the same
preprocessed image, after the text embeddings are computed (the official
segmentors compute theirs in ``__init__``, outside the timed call).

One cold ``predict`` on each side (the first call, one-time allocations
included on both sides).
"""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Dict, List, Optional, Sequence

__all__ = [
    'OFFICIAL_CLASSES', 'official_predict_times', 'our_predict_time',
    'generator_command', 'compare_official', 'load_average'
]

#: Method -> the official segmentor class whose ``predict`` is timed.
OFFICIAL_CLASSES = {
    'corrclip': 'CorrCLIPSegmentation',  # CorrCLIPv1/corrclip_segmentor.py
    'trident': 'Trident',  # trident.py
}

_DRIVER = textwrap.dedent('''
    import builtins, functools, json, os, runpy, sys, time
    names = set(os.environ['MMOVSS_TIME_CLASSES'].split(','))
    out = os.environ['MMOVSS_TIME_OUT']
    records = []
    build_class = builtins.__build_class__

    def timed(fn, owner):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn(*args, **kwargs)
            records.append(dict(cls=owner, seconds=time.perf_counter() - wall,
                                cpu_seconds=time.process_time() - cpu))
            with open(out, 'w') as f:
                json.dump(records, f)
            return result
        return wrapper

    def build(func, name, *bases, **kwargs):
        cls = build_class(func, name, *bases, **kwargs)
        if name in names and 'predict' in vars(cls):
            cls.predict = timed(vars(cls)['predict'], name)
        return cls

    builtins.__build_class__ = build
    script, argv = sys.argv[1], sys.argv[1:]
    sys.argv = argv
    runpy.run_path(script, run_name='__main__')
''')


def generator_command(method: str, repo: str, official_repo: str,
                      dino_repo: str, shared: str, out: str) -> List[str]:
    """The fixture generator's arguments (its README's command, ``--out``
    redirected)."""
    fixtures = osp.join(repo, 'tests', 'data', 'parity_corrclip_trident')
    args = [osp.join(repo, 'tools', 'parity', f'{method}_reference.py'),
            '--official-repo', official_repo, '--dino-repo', dino_repo,
            '--clip-weights', osp.join(shared, 'clip_tiny_openai_format.pt'),
            '--image', osp.join(shared, '000000001584.jpg'), '--seed', '0',
            '--out', out]
    if method == 'trident':
        args += ['--dino-weights', osp.join(fixtures, 'dino_tiny_vit8.pth')]
    return args


def official_predict_times(method: str, command: Sequence[str],
                           threads: int = 0, timeout: float = 1800
                           ) -> List[Dict[str, float]]:
    """Runs the generator in a subprocess with the official ``predict`` timed.

    Returns:
        list[dict]: One ``{cls, seconds, cpu_seconds}`` per ``predict`` call.
    """
    if method not in OFFICIAL_CLASSES:
        raise ValueError(f'method={method!r}; one of {sorted(OFFICIAL_CLASSES)}.')
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'times.json')
        env = dict(os.environ, MMOVSS_TIME_CLASSES=OFFICIAL_CLASSES[method],
                   MMOVSS_TIME_OUT=out)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        proc = subprocess.run([sys.executable, '-c', _DRIVER, *command],
                              env=env, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0 or not osp.isfile(out):
            raise RuntimeError(
                f'The official {method} run failed (exit {proc.returncode}); '
                f'its output ends with:\n{proc.stdout[-2000:]}\n'
                f'{proc.stderr[-4000:]}')
        with open(out) as f:
            return json.load(f)


def _parity_runs(repo: str):
    from mmovss.testing import corrclip_trident_runs
    return corrclip_trident_runs


def our_predict_time(method: str, repo: str, directory: str,
                     threads: int = 0) -> Dict[str, float]:
    """Our model built from a parity fixture folder of the method (the one
    the official run just wrote), one timed ``predict`` (text embeddings
    computed first, untimed)."""
    import torch

    from .timing import timed_call
    if threads:
        torch.set_num_threads(threads)
    runs = _parity_runs(repo)
    json_path = osp.join(directory, f'{method}.json')
    if method == 'corrclip':
        cls = runs.CorrCLIPRun
    elif method == 'trident':
        cls = runs.TridentRun
    else:
        raise ValueError(f'method={method!r}; one of {sorted(OFFICIAL_CLASSES)}.')
    missing = runs.missing_reason(directory, json_path)
    if missing:
        raise FileNotFoundError(f'{method} fixture: {missing}')
    with torch.no_grad():
        run = cls(directory, json_path)
        run.model.class_embeddings()
        inputs, samples = run.data()
        seconds, cpu, _ = timed_call(lambda: run.model.predict(inputs, samples))
    return dict(seconds=seconds, cpu_seconds=cpu,
                input_hw=list(inputs.shape[2:]))


def compare_official(method: str, repo: str, official_repo: str,
                     dino_repo: str, shared: str, threads: int = 0,
                     timeout: float = 1800) -> Dict[str, object]:
    """Both sides on the same image (the tiny models of the parity fixture:
    the generators' stage recording assumes them); ratios ours / official."""
    with tempfile.TemporaryDirectory() as out:
        command = generator_command(method, repo, official_repo, dino_repo,
                                    shared, out)
        started = time.time()
        official = official_predict_times(method, command, threads, timeout)
        official_run_s = time.time() - started
        # the fixture just written, with the weights and image it names
        for name in (command[command.index('--clip-weights') + 1],
                     command[command.index('--image') + 1],
                     osp.join(repo, 'tests', 'data', 'parity_corrclip_trident',
                              'dino_tiny_vit8.pth')):
            if not osp.exists(osp.join(out, osp.basename(name))):
                shutil.copy(name, out)
        ours = our_predict_time(method, repo, out, threads)
    if len(official) != 1:
        raise RuntimeError(f'expected one official predict, got {official}')
    off = official[0]
    return dict(
        method=method, ours=ours, official=off,
        ratio_wall=ours['seconds'] / off['seconds'],
        ratio_cpu=ours['cpu_seconds'] / off['cpu_seconds'],
        official_run_s=official_run_s, clip_weights=osp.basename(
            command[command.index('--clip-weights') + 1]),
        command=[osp.relpath(c, repo) if osp.isabs(c) and c.startswith(repo)
                 else c for c in command])


def load_average() -> Optional[str]:
    """``uptime``'s load averages (Linux ``/proc/loadavg``)."""
    try:
        with open('/proc/loadavg') as f:
            return ' '.join(f.read().split()[:3])
    except OSError:
        return None
