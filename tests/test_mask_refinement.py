"""Mask generators and the mask-guided refinement of training-free heads (issue #20).

Hand-computed votes on small cases, the file format (CorrCLIP's), the cache folder, SAM masks
through the refinement, and dense methods (NACLIP, ProxyCLIP) with a mask generator built from
config and run on one image with tiny random models and masks from files.
"""
import copy
import os.path as osp
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmovss.models.mask_generators import (
    BaseMaskGenerator,
    FileMaskGenerator,
    MaskCache,
    MaskVoteRefinement,
    load_regions,
    majority_vote,
    masks_to_regions,
    mean_vote,
    save_regions,
)
from mmovss.models.text_encoders.class_embeddings import ClassEmbeddings
from mmovss.testing.clip import tiny_clip_cfg
from mmovss.vocab import Vocabulary

from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
init_default_scope('mmseg')


# ------------------------------------------------------------ regions and votes
def test_overlapping_masks_go_to_the_smallest():
    masks = torch.zeros(3, 4, 5, dtype=torch.bool)
    masks[0, :, :4] = True          # 16 px, the largest
    masks[1, 1:3, 1:3] = True       # 4 px, inside mask 0
    masks[2, 3, 3:] = True          # 2 px, overlaps mask 0 at (3, 3)
    want = torch.full((4, 5), -1)
    want[:, :4] = 0
    want[1:3, 1:3] = 1
    want[3, 3:] = 2
    assert torch.equal(masks_to_regions(masks), want)
    # a mask hidden by smaller ones leaves no region; ids stay consecutive
    hidden = torch.stack([masks[1], masks[1] & False, masks[1]])
    hidden[1, 1:3, 1:3] = True
    assert set(masks_to_regions(hidden).unique().tolist()) == {-1, 0}


REGIONS = torch.tensor([[0, 0, 1, 1, -1],
                        [0, 0, 1, 1, -1],
                        [2, 2, 2, 1, -1]])


def test_majority_vote_equals_the_hand_computed_vote():
    labels = torch.tensor([[[3, 1, 2, 2, 4],
                            [3, 3, 0, 2, 4],
                            [1, 2, 1, 5, 0]]])
    # region 0: {3, 1, 3, 3} -> 3; region 1: {2, 2, 0, 2, 5} -> 2;
    # region 2: {1, 2, 1} -> 1; column 4 uncovered, unchanged
    want = torch.tensor([[[3, 3, 2, 2, 4],
                          [3, 3, 2, 2, 4],
                          [1, 1, 1, 2, 0]]])
    assert torch.equal(majority_vote(labels, REGIONS), want)
    # ties go to the smallest label
    tie = torch.tensor([[[5, 2, 0, 0, 0], [2, 5, 0, 0, 0], [0, 0, 0, 0, 0]]])
    assert majority_vote(tie, REGIONS)[0, 0, 0] == 2
    with pytest.raises(ValueError, match='differ in size'):
        majority_vote(labels[..., :4], REGIONS)


def test_mean_vote_equals_the_hand_computed_mean():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5)
    got = mean_vote(x, REGIONS)
    want = x.clone()
    for r in range(3):
        where = REGIONS == r
        want[:, where] = x[:, where].mean(1, keepdim=True)
    torch.testing.assert_close(got, want)
    assert torch.equal(got[:, :, 4], x[:, :, 4])  # uncovered column untouched
    assert torch.equal(mean_vote(x, torch.full((3, 5), -1)), x)


# ------------------------------------------------------------ files
def test_corrclip_file_format(tmp_path):
    ids = np.array([[7, 7, 9], [3, 9, 9]], dtype=np.int16)  # 3 = min = uncovered
    np.savez(tmp_path / 'img_1.npz', instance_mask=ids)
    want = torch.tensor([[0, 0, 1], [-1, 1, 1]])
    assert torch.equal(load_regions(str(tmp_path / 'img_1.npz')), want)
    assert torch.equal(load_regions(str(tmp_path / 'img_1.npz'), None),
                       torch.tensor([[1, 1, 2], [0, 2, 2]]))
    # save/load round trip keeps every region, also when every pixel is covered
    full = torch.tensor([[0, 1], [1, 2]])
    save_regions(str(tmp_path / 'full.npz'), full)
    assert torch.equal(load_regions(str(tmp_path / 'full.npz')), full)
    from PIL import Image
    Image.fromarray(ids.astype(np.uint8)).save(tmp_path / 'img_2.png')
    gen = FileMaskGenerator(str(tmp_path), suffix='.png')
    assert torch.equal(gen.regions(None, dict(img_path='a/b/img_2.jpg')), want)
    masks, scores = gen(None, dict(img_path='img_2.jpg'))
    assert masks.shape == (2, 2, 3) and torch.equal(masks_to_regions(masks), want)
    with pytest.raises(FileNotFoundError, match='img_3.png'):
        gen.regions(None, dict(img_path='img_3.jpg'))
    with pytest.raises(ValueError, match='no `img_path`'):
        gen.regions(None, dict(ori_shape=(2, 3)))
    with pytest.raises(ValueError, match='suffix'):
        FileMaskGenerator(str(tmp_path), suffix='.jpg')
    np.savez(tmp_path / 'bad.npz', masks=ids)
    with pytest.raises(KeyError, match='instance_mask'):
        load_regions(str(tmp_path / 'bad.npz'))


# ------------------------------------------------------------ cache
@MODELS.register_module(force=True)
class _CountingMasks(BaseMaskGenerator):
    """Two masks from the pixel values (left half, bright pixels); counts calls."""
    calls = 0

    def __init__(self, threshold=128.0):
        super().__init__()
        self.threshold = threshold

    def forward(self, pixels, img_meta=None):
        type(self).calls += 1
        left = torch.zeros(pixels.shape[1:], dtype=torch.bool)
        left[:, :pixels.shape[2] // 2] = True
        return torch.stack([left, pixels[0] > self.threshold]), torch.ones(2)


def test_cache_computes_each_image_once(tmp_path):
    ref = MaskVoteRefinement(dict(type='_CountingMasks'), cache_dir=str(tmp_path))
    image = torch.rand(3, 6, 8) * 255
    meta = dict(img_path=str(tmp_path / 'missing.jpg'))  # not readable: pixels from `image`
    ref.mean.zero_(), ref.std.fill_(1.0)
    want = masks_to_regions(_CountingMasks()(image)[0])
    _CountingMasks.calls = 0
    first = ref.region_map((6, 8), image, meta)
    again = ref.region_map((6, 8), image, meta)
    assert _CountingMasks.calls == 1 and torch.equal(first, again)
    assert torch.equal(first, want)
    assert len(list(tmp_path.glob('*.npz'))) == 1
    ref.region_map((6, 8), image.flip(-1), meta)  # other content: computed
    other = MaskVoteRefinement(dict(type='_CountingMasks', threshold=10.0),
                               cache_dir=str(tmp_path))
    other.mean.zero_(), other.std.fill_(1.0)
    other.region_map((6, 8), image, meta)  # other settings: computed
    assert _CountingMasks.calls == 3 and len(list(tmp_path.glob('*.npz'))) == 3
    cache = MaskCache(str(tmp_path), dict(type='_CountingMasks'))
    assert cache.key(image) != cache.key(image.flip(-1))


def test_refinement_rejects_bad_settings():
    with pytest.raises(ValueError, match="mode='vote'"):
        MaskVoteRefinement(dict(type='_CountingMasks'), mode='vote')
    with pytest.raises(ValueError, match='generator=dict'):
        MaskVoteRefinement(None)
    ref = MaskVoteRefinement(dict(type='_CountingMasks'))
    with pytest.raises(ValueError, match='needs the image'):
        ref.region_map((4, 4), None, dict())


def test_sam_masks_through_the_refinement(tmp_path):
    pytest.importorskip('segment_anything')
    ref = MaskVoteRefinement(
        dict(type='SAMMaskGenerator', model_cfg=dict(img_size=64),
             generator_cfg=dict(points_per_side=4, pred_iou_thresh=0.0,
                                stability_score_thresh=0.0)),
        cache_dir=str(tmp_path))
    image = torch.randn(3, 16, 24)
    regions = ref.region_map((20, 30), image, None)
    assert regions.shape == (20, 30) and int(regions.min()) >= -1
    torch.testing.assert_close(ref.region_map((20, 30), image, None), regions)
    assert len(list(tmp_path.glob('*.npz'))) == 1


def test_sam2_without_the_package_says_how_to_install():
    try:
        import sam2  # noqa: F401
        pytest.skip('sam2 is installed')
    except ImportError:
        pass
    with pytest.raises(ImportError, match='pip install sam2'):
        MODELS.build(dict(type='SAM2MaskGenerator', model_cfg='x.yaml', checkpoint='x.pt'))


# ------------------------------------------------------------ head
VOCAB = Vocabulary(['sky, road, wall', 'bus', 'car, van', 'person', 'tree'])


def _embeds():
    e = F.normalize(torch.randn(VOCAB.num_names, 4), dim=-1)
    return ClassEmbeddings(e, torch.tensor(VOCAB.name_to_class), VOCAB)


def _region_file(tmp_path, size, seed=1):
    """Random blocky regions at ``size`` written as ``img.npz`` (CorrCLIP format)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 6, (size[0] // 4 + 1, size[1] // 4 + 1), generator=g)
    ids = ids.repeat_interleave(4, 0).repeat_interleave(4, 1)[:size[0], :size[1]]
    np.savez(tmp_path / 'img.npz', instance_mask=ids.numpy())
    return load_regions(str(tmp_path / 'img.npz'))


def _head(mode, tmp_path, **kwargs):
    refinement = None if mode is None else dict(
        type='MaskVoteRefinement', mode=mode,
        generator=dict(type='FileMaskGenerator', mask_dir=str(tmp_path)))
    return MODELS.build(dict(type='TrainingFreeHead', in_channels=4, logit_scale=50.0,
                             background_index=0, mask_refinement=refinement, **kwargs))


@pytest.mark.parametrize('chunk', [1, 64])
def test_head_majority_vote_equals_the_hand_computed_vote(chunk, tmp_path):
    torch.manual_seed(2)
    class_embeds, size, meta = _embeds(), (23, 31), dict(img_path='x/img.jpg')
    sims = torch.randn(VOCAB.num_names, 6, 8) * 0.1
    regions = _region_file(tmp_path, size)
    plain = _head(None, tmp_path, prob_thd=0.3, class_chunk=chunk).predict_labels(
        sims, class_embeds, size)
    got = _head('majority', tmp_path, prob_thd=0.3, class_chunk=chunk).predict_labels(
        sims, class_embeds, size, img_meta=meta)
    want = plain.clone()
    for r in range(int(regions.max()) + 1):
        votes = Counter(plain[0][regions == r].tolist())
        top = max(votes.values())
        want[0][regions == r] = min(c for c, n in votes.items() if n == top)
    assert torch.equal(got, want) and not torch.equal(got, plain)


@pytest.mark.parametrize('chunk', [1, 64])
def test_head_mean_vote_equals_the_hand_computed_vote(chunk, tmp_path):
    torch.manual_seed(3)
    class_embeds, size, meta = _embeds(), (23, 31), dict(img_path='img.png')
    sims = torch.randn(VOCAB.num_names, 6, 8) * 0.1
    regions = _region_file(tmp_path, size)
    labels, probs = _head('mean', tmp_path, class_chunk=chunk).predict_labels(
        sims, class_embeds, size, return_probs=True, img_meta=meta)
    up = F.interpolate(sims[None], size=size, mode='bilinear', align_corners=False)[0]
    for r in range(int(regions.max()) + 1):
        up[:, regions == r] = up[:, regions == r].mean(1, keepdim=True)
    name_probs = (50.0 * up).softmax(0)
    index = torch.tensor(VOCAB.name_to_class)
    want = torch.stack([name_probs[index == c].amax(0) for c in range(VOCAB.num_classes)])
    torch.testing.assert_close(probs, want)
    assert torch.equal(labels[0], want.argmax(0))
    for r in range(int(regions.max()) + 1):  # one label per region
        assert labels[0][regions == r].unique().numel() == 1


def test_head_without_refinement_is_unchanged(tmp_path):
    torch.manual_seed(4)
    sims = torch.randn(VOCAB.num_names, 6, 8) * 0.1
    class_embeds = _embeds()
    a = _head(None, tmp_path)
    assert a.mask_refinement is None
    b = MODELS.build(dict(type='TrainingFreeHead', in_channels=4, logit_scale=50.0,
                          background_index=0))
    assert torch.equal(a.predict_labels(sims, class_embeds, (9, 11)),
                       b.predict_labels(sims, class_embeds, (9, 11)))


# ------------------------------------------------------------ from config, tiny models
def _tiny(cfg, mask_dir):
    """A config's model with a tiny random CLIP (and DINO) and masks from ``mask_dir``."""
    tiny = tiny_clip_cfg()
    model = copy.deepcopy(cfg.model.to_dict())
    model['backbone'].update(model_name=None, model_cfg=tiny, pretrained=None)
    if 'vfm' in model['backbone']:
        model['backbone']['vfm'].update(pretrained=False,
                                        model_kwargs=dict(embed_dim=64, num_heads=2))
    model['text_encoder'].update(model_name=None, model_cfg=tiny, pretrained=None,
                                 cache_dir=None, templates='single')
    model['decode_head']['in_channels'] = tiny['embed_dim']
    model['decode_head']['mask_refinement'] = dict(
        type='MaskVoteRefinement', mode=model['decode_head']['mask_refinement']['mode'],
        generator=dict(type='FileMaskGenerator', mask_dir=str(mask_dir)))
    model['test_cfg'].update(crop_size=(32, 32), stride=(16, 16))
    return model


@pytest.mark.parametrize('path,mode', [
    ('configs/naclip/naclip-mask-vote_vit-b16_voc21.py', 'majority'),
    ('configs/proxyclip/proxyclip-sam-vote_vit-b16-dino-b8_voc21.py', 'mean'),
])
def test_dense_method_with_masks_from_files_builds_and_runs(path, mode, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, path))
    assert cfg.model.decode_head.mask_refinement.mode == mode
    torch.manual_seed(0)
    model = MODELS.build(_tiny(cfg, tmp_path)).eval()
    assert isinstance(model.decode_head.mask_refinement.generator, FileMaskGenerator)
    size = (45, 60)
    ids = np.zeros(size, dtype=np.int32)  # 0 = uncovered (the minimum)
    ids[:, :30], ids[20:, 30:] = 1, 2
    np.savez(tmp_path / '2007_000033.npz', instance_mask=ids)
    sample = SegDataSample(metainfo=dict(ori_shape=size, img_shape=(48, 64),
                                         pad_shape=(48, 64),
                                         img_path='JPEGImages/2007_000033.jpg'))
    with torch.no_grad():
        pred = model.predict(torch.randn(1, 3, 48, 64), [sample])[0].pred_sem_seg.data[0]
    assert pred.shape == size and int(pred.max()) < 21
    assert pred[:, :30].unique().numel() == 1 and pred[20:, 30:].unique().numel() == 1


def test_unwritable_cache_folder_warns_once_and_computes(tmp_path, monkeypatch):
    import tempfile
    import warnings
    blocked = tmp_path / 'a_file'
    blocked.write_text('')  # a file where the cache folder should be
    image = torch.rand(3, 6, 8) * 255
    want = masks_to_regions(_CountingMasks()(image)[0])
    cache = MaskCache(str(blocked), dict(type='_CountingMasks'))
    with pytest.warns(UserWarning, match="a_file' cannot be written.*"
                      'cache_dir=None'):
        got = cache.get_or_compute(image, lambda: want)
    assert torch.equal(got, want)

    def read_only(*args, **kwargs):
        raise PermissionError(13, 'Permission denied', kwargs.get('dir'))

    monkeypatch.setattr(tempfile, 'mkstemp', read_only)
    cache = MaskCache(str(tmp_path / 'ro'), dict(type='_CountingMasks'))
    with pytest.warns(UserWarning, match='PermissionError'):
        assert torch.equal(cache.get_or_compute(image, lambda: want), want)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # said once
        assert torch.equal(cache.get_or_compute(image.flip(-1), lambda: want),
                           want)
    assert not list(tmp_path.rglob('*.npz'))
