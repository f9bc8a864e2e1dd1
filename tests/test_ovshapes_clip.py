"""The shipped OVShapes tiny CLIP loads like real open_clip weights and works."""
from pathlib import Path

import open_clip
import pytest

from mmovss.models.utils import build_open_clip
from mmovss.ovshapes.pretrain import OVSHAPES_CLIP_CFG, zero_shot_accuracy

ASSET = Path(__file__).resolve().parents[1] / 'mmovss/assets/ovshapes_tiny_clip.pt'


def test_shipped_tiny_clip_is_small_and_classifies_unseen_classes():
    assert ASSET.is_file() and ASSET.stat().st_size <= 10 * 2**20
    clip, identity = build_open_clip(None, str(ASSET), OVSHAPES_CLIP_CFG)
    assert identity  # weights identity for the text-embedding cache
    tokenizer = open_clip.get_tokenizer(
        'ViT-B-16', context_length=OVSHAPES_CLIP_CFG['text_cfg']['context_length'])
    acc = zero_shot_accuracy(clip.float().eval(), tokenizer, seed=777, per_class=5)
    # chance is 1/36. Issue #22's goal is >= 0.8 on unseen compositions. With this
    # seed: the shipped two-stage CLIP ('crowded', then 'single' from it) 0.98 unseen /
    # 0.94 seen (0.95 / 0.91 in its record). The 'crowded' stage alone (0.63 / 0.55) fails
    # it; the first tiny CLIP ('single' only, 0.93 / 0.86) passes it and is caught by its
    # patch tokens (tests/test_ovshapes_training_free_e2e.py); a random model: below.
    assert acc['unseen'] >= 0.8, acc
    assert acc['seen'] >= 0.8, acc


def test_random_weights_are_at_chance():
    # The same check on an untrained model stays near chance: the test can fail.
    torch = pytest.importorskip('torch')
    torch.manual_seed(0)
    model = open_clip.CLIP(**OVSHAPES_CLIP_CFG).eval()
    tokenizer = open_clip.get_tokenizer('ViT-B-16', context_length=32)
    acc = zero_shot_accuracy(model, tokenizer, seed=777, per_class=2)
    assert acc['unseen'] < 0.3, acc
