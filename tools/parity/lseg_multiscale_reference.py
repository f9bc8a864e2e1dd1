"""Official-parity fixture of LSeg's multi-scale + flip evaluation.

Runs the official evaluator of github.com/isl-org/lang-seg,
``additional_utils/encoding_models.py: MultiEvalModule`` (what ``test_lseg.py``
imports as ``LSeg_MultiEvalModule``), on CPU around a tiny deterministic
stand-in for ``LSegModule`` and writes a fixture (see
:mod:`mmovss.testing.official_parity`)::

    python tools/parity/lseg_multiscale_reference.py --official-repo lang-seg --seed 0 \
        --out tests/data/official_parity/lseg_multiscale/seed0

The stand-in (:class:`TinyNet`) has what ``MultiEvalModule`` reads of the module
(``base_size``, ``crop_size``, ``mean``, ``std``, ``_up_kwargs`` = PyTorch-Encoding's
``up_kwargs``, ``evaluate``): a 5x5 conv (so the black padding reaches the logits),
tanh, a stride-2 3x3 conv to the classes and a 2x bilinear upsampling with
``align_corners=True`` (LSegNet's output head), weights drawn from a seeded generator.
The evaluator runs with the official scales (0.5 ... 1.75) and flips, on tiny sizes
(``--base-size``, ``--crop-size``; stride = int(crop * 2 / 3) as in the official code)
so that every branch runs: one-crop scales, windowed scales with and without
padding, a landscape and a portrait image.

Stubs: ``Tensor.cuda`` / ``Module.cuda`` return self (``cuda_as_noop``); nothing
else of the official code is changed. Only ``additional_utils/`` is imported.
"""
import argparse
import json
import os.path as osp
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
from mmovss.testing.official_parity import write_fixture  # noqa: E402
from mmovss.testing.official_parity.official_code import (  # noqa: E402
    add_source_dirs,
    cuda_as_noop,
    seed_everything,
)

SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]  # test_lseg.py (every dataset but citys)
IMAGES = {'landscape': (37, 53), 'portrait': (45, 29)}
NUM_CLASSES = 5
MEAN = [0.5, 0.5, 0.5]  # LSegModule: norm_mean / norm_std
STD = [0.5, 0.5, 0.5]


class TinyNet(nn.Module):
    """Deterministic stand-in for ``LSegModule`` (see the module docstring)."""

    def __init__(self, base_size: int, crop_size: int, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, num_classes, 3, stride=2, padding=1)
        self.base_size = base_size
        self.crop_size = crop_size
        self.mean = MEAN
        self.std = STD
        self._up_kwargs = {'mode': 'bilinear', 'align_corners': True}

    def evaluate(self, x):
        y = self.conv2(torch.tanh(self.conv1(x)))
        return F.interpolate(y, scale_factor=2, mode='bilinear', align_corners=True)

    forward = evaluate


def _commit(repo: str) -> str:
    try:
        return subprocess.check_output(['git', '-C', repo, 'rev-parse', 'HEAD'],
                                       stderr=subprocess.DEVNULL, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--official-repo', required=True, help='clone of isl-org/lang-seg')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--base-size', type=int, default=40)
    parser.add_argument('--crop-size', type=int, default=32)
    args = parser.parse_args()

    add_source_dirs(args.official_repo)
    from additional_utils.encoding_models import MultiEvalModule  # official

    seed_everything(args.seed)
    net = TinyNet(args.base_size, args.crop_size).eval()
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    inputs, stages = {}, {}
    with torch.no_grad(), cuda_as_noop():
        evaluator = MultiEvalModule(net, NUM_CLASSES, scales=SCALES, flip=True).eval()
        for name, (h, w) in IMAGES.items():
            image = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8)
            # LSegModule.val_transform: ToTensor + Normalize(mean, std)
            x = (image.permute(2, 0, 1).float() / 255.0 - torch.tensor(MEAN)[:, None, None]) \
                / torch.tensor(STD)[:, None, None]
            scores = evaluator(x[None])
            inputs[f'image_{name}'] = image.numpy()
            inputs[f'normalized_{name}'] = x.numpy()
            stages[f'scores_{name}'] = scores.numpy()
            stages[f'labels_{name}'] = scores.argmax(1).numpy()

    meta = dict(
        method='lseg_multiscale', seed=args.seed,
        official_repo='github.com/isl-org/lang-seg', official_commit=_commit(args.official_repo),
        official_function='additional_utils/encoding_models.py: MultiEvalModule.forward',
        base_size=args.base_size, crop_size=args.crop_size,
        stride=int(args.crop_size * 2.0 / 3.0), scales=SCALES, flip=True,
        mean=MEAN, std=STD, num_classes=NUM_CLASSES, images=IMAGES,
        stand_in='TinyNet: conv5x5(3->6, pad 2) -> tanh -> conv3x3(6->5, stride 2, pad 1) -> '
                 '2x bilinear (align_corners=True); state_dict.pth',
        tolerances=dict(default=1e-4),
        command=' '.join(['python', 'tools/parity/lseg_multiscale_reference.py',
                          *sys.argv[1:]]))
    state = {k: v for k, v in net.state_dict().items()}
    write_fixture(args.out, meta, state, inputs, stages)
    print(json.dumps({k: list(v.shape) for k, v in stages.items()}))


if __name__ == '__main__':
    main()
