"""OVShapes end to end without training: the shipped tiny CLIP's patch tokens
segment unseen classes (issue #22, item 3).

The tiny CLIP (``mmovss/assets/ovshapes_tiny_clip.pt``) is pretrained so that
its dense tokens mean something (``crowded`` scenes, then ``single`` ones from
there, see ``configs/ovshapes/README.md``). A small world is generated (seed
1, 40 val images) and the best training-free config (NACLIP + PAMR) is tested
on it with all 40 names, in process (the model built from the config, IoU as
MMSeg computes it).

Chance level: an unseen-object pixel classified uniformly among the 40 classes
is right with p = 1/40 (unseen mIoU of about 1-2 %). Measured with this exact
setup (unseen mIoU in %, then with the unseen names rotated): the shipped
two-stage CLIP (md5 2a973255) 43.84 / 0.42 (on the full 200-image worlds 1-3:
configs/ovshapes/README.md); its ``crowded`` stage alone 26.34 / 1.97; the
first tiny CLIP (``single`` only) 5.72 / 0.06. THRESHOLD = 22 % is half the
measured value and 9-18x chance: the first tiny CLIP fails it. The control
rotates the unseen names among the unseen classes at test time (the same
model, ``set_vocabulary``), which must collapse the unseen mIoU: the model
reads the text, and a threshold alone would not show it.
"""
import numpy as np
import pytest
import torch

from mmovss.ovshapes import world

CONFIG = 'configs/ovshapes/naclip-pamr_tiny-clip_ovshapes.py'
THRESHOLD = 22.0  # unseen mIoU in %; measured 43.84 (control 0.42), see the module docstring


def _unseen_miou(model, dataset, vocabulary):
    """Unseen-class mIoU in % (classes absent from the ground truth and the
    prediction are skipped, as MMSeg's IoU metric does)."""
    from mmengine.dataset import pseudo_collate
    model.set_vocabulary(vocabulary)
    n = len(world.class_names())
    inter, union = np.zeros(n), np.zeros(n)
    with torch.no_grad():
        for start in range(0, len(dataset), 20):
            stop = min(start + 20, len(dataset))
            batch = pseudo_collate([dataset[i] for i in range(start, stop)])
            for out in model.test_step(batch):
                pred = out.pred_sem_seg.data.numpy().ravel()
                gt = out.gt_sem_seg.data.numpy().ravel()
                hit = np.bincount(gt[pred == gt], minlength=n)
                inter += hit
                union += np.bincount(pred, minlength=n) + np.bincount(gt, minlength=n) - hit
    unseen = [world.class_names().index(c) for c in world.unseen_class_names()]
    present = [c for c in unseen if union[c] > 0]
    return 100 * float(np.mean(inter[present] / union[present]))


@pytest.fixture(scope='module')
def setup(tmp_path_factory, repo_root):
    from mmovss.ovshapes.writer import write_world

    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS
    root = tmp_path_factory.mktemp('ovshapes_tf') / 'world'
    write_world(root, seed=1, num_train=0, num_val=40)
    cfg = Config.fromfile(str(repo_root / CONFIG))
    init_default_scope('mmseg')
    cfg.test_dataloader.dataset.data_root = str(root)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval(), dataset


@pytest.fixture(scope='module')
def unseen(setup):
    model, dataset = setup
    return _unseen_miou(model, dataset, list(world.class_names()))


def test_training_free_dense_tokens_segment_unseen_classes(unseen):
    assert unseen >= THRESHOLD, unseen


def test_rotated_unseen_names_collapse_the_unseen_miou(setup, unseen):
    names = list(world.class_names())
    unseen_idx = [names.index(n) for n in world.unseen_class_names()]
    shuffled = names.copy()
    for dst, src in zip(unseen_idx, unseen_idx[1:] + unseen_idx[:1]):
        shuffled[dst] = names[src]
    control = _unseen_miou(*setup, shuffled)
    assert control < 0.3 * unseen, (control, unseen)
