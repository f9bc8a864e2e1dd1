"""SAM + CLIP: the label map assembled from given masks, the head with given
masks (CLIP crop + mask pooling), SAM's automatic mask generator on a tiny
random SAM (``segment_anything`` required, else skipped)."""
import pytest
import torch
import torch.nn as nn

import mmovss  # noqa: F401
from mmovss.models.decode_heads.sam_clip_head import label_scores_from_masks
from mmovss.testing.clip import tiny_clip_cfg

from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

CLIP = tiny_clip_cfg('vit')


def test_label_map_from_overlapping_masks():
    masks = torch.zeros(3, 4, 6, dtype=torch.bool)
    masks[0, :, :4] = True          # big, low score, class 0
    masks[1, 1:3, 2:6] = True       # overlaps mask 0, higher score, class 2
    masks[2, 3, 0] = True           # inside mask 0, lowest score, class 1
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    scores = torch.tensor([0.5, 0.9, 0.1])
    fallback = torch.zeros(3, 4, 6)
    fallback[1] = 1.0               # uncovered pixels: class 1
    out = label_scores_from_masks(masks, probs, scores, fallback)
    expect = torch.tensor([[0, 0, 0, 0, 1, 1],
                           [0, 0, 2, 2, 2, 2],
                           [0, 0, 2, 2, 2, 2],
                           [0, 0, 0, 0, 1, 1]])
    assert torch.equal(out.argmax(0), expect)
    torch.testing.assert_close(out[:, 1, 3], probs[1])  # winner's probabilities
    assert torch.equal(label_scores_from_masks(masks[:0], probs[:0], scores[:0],
                                               fallback), fallback)
    with pytest.raises(ValueError, match='expected masks'):
        label_scores_from_masks(masks, probs[:2], scores)


@MODELS.register_module(force=True)
class _GivenMasks(nn.Module):
    """Test helper: returns fixed masks and scores for any image."""

    def __init__(self, masks, scores):
        super().__init__()
        self.masks = torch.tensor(masks, dtype=torch.bool)
        self.scores = torch.tensor(scores)

    def forward(self, pixels):
        return self.masks, self.scores


def sam_clip_cfg(masks, scores, classifiers=('crop', 'pool')):
    return dict(
        type='TwoStageEncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[122.8, 116.7, 104.1],
                               std=[68.5, 66.6, 70.3], bgr_to_rgb=True),
        backbone=dict(type='OpenCLIPViT', model_cfg=CLIP, last_block_mode='vanilla'),
        text_encoder=dict(type='OpenCLIPTextEncoder', model_cfg=CLIP, templates='single'),
        decode_head=dict(type='SAMCLIPHead', in_channels=32,
                         mask_generator=dict(type='_GivenMasks', masks=masks, scores=scores),
                         region_classifier=dict(type='RegionCLIPClassifier',
                                                clip=dict(type='OpenCLIPViT', model_cfg=CLIP),
                                                crop_size=16),
                         classifiers=classifiers),
        vocabulary=['cat', 'dog', 'sky'])


def test_sam_clip_head_labels_every_mask_and_falls_back_to_dense_clip():
    init_default_scope('mmseg')
    masks = torch.zeros(2, 32, 32, dtype=torch.bool)
    masks[0, :16] = True
    masks[1, 8:24, 8:24] = True
    model = MODELS.build(sam_clip_cfg(masks.tolist(), [0.5, 0.9])).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        scores = model._forward(x)[0]
        head = model.decode_head
        feats = model.extract_feat(x)
        class_embeds = model.class_embeddings()
        probs = head.mask_class_probs(feats[-1][0], feats[-2][0], masks, class_embeds)
        crop_only = head.classifiers
        head.classifiers = ('crop', )
        p_crop = head.mask_class_probs(feats[-1][0], feats[-2][0], masks, class_embeds)
        head.classifiers = crop_only
        model.set_vocabulary(['cat', 'dog', 'sky', 'road'])
        four = model._forward(x)
        out = model.predict(x)
    assert scores.shape == (3, 32, 32) and four.shape == (1, 4, 32, 32)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    assert not torch.allclose(probs, p_crop)  # pooling changes the probabilities
    rank = probs.max(-1).values * torch.tensor([0.5, 0.9])
    top = int(rank.argmax())
    torch.testing.assert_close(scores[:, 12, 12], probs[top])   # overlap
    torch.testing.assert_close(scores[:, 2, 2], probs[0])       # mask 0 only
    assert not torch.allclose(scores[:, 30, 30], probs[0])      # uncovered: dense CLIP
    torch.testing.assert_close(scores[:, 30, 30].sum(), torch.tensor(1.0))
    assert out[0].pred_sem_seg.shape == (32, 32)


def test_sam_clip_head_needs_region_classifier_for_crops():
    init_default_scope('mmseg')
    cfg = sam_clip_cfg([[[True]]], [1.0])
    cfg['decode_head']['region_classifier'] = None
    with pytest.raises(ValueError, match='region_classifier'):
        MODELS.build(cfg)


def test_sam_mask_generator_tiny_random_sam():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='checkpoint'):
        MODELS.build(dict(type='SAMMaskGenerator', model_type='vit_b'))
    # random weights: only the shapes are meaningful
    generator = MODELS.build(dict(
        type='SAMMaskGenerator', model_cfg=dict(img_size=64, seed=0),
        generator_cfg=dict(points_per_side=2, pred_iou_thresh=-1e9,
                           stability_score_thresh=-1e9, box_nms_thresh=1.0)))
    masks, scores = generator(torch.rand(3, 40, 48) * 255)
    assert masks.dtype == torch.bool and masks.shape[1:] == (40, 48)
    assert scores.shape == (masks.shape[0], )
    assert masks.shape[0] >= 1
