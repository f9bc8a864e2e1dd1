"""Which stage limits a mask-classification segmentor: oracle ablations.

Mask-classification methods (MaskFormer's family: ZegFormer, OVSeg, SAN,
FC-CLIP) segment in two steps, class-agnostic mask proposals and then a class
for each proposal. Replacing one step by the ground truth bounds what the
other step can reach (OVSeg, Liang et al., CVPR 2023, Sec. 3.2: "ground-truth
masks classified by CLIP" and "MaskFormer's proposals with ground-truth
classes" locate the bottleneck). Three runs over the same test images, all
scored by the config's evaluator (seen / unseen / hIoU with
:class:`~mmovss.evaluation.OpenVocabIoUMetric`):

* ``model``: the method as configured (``model.test_step``);
* ``oracle_labels``: the model's own proposals and "no object" scores, each
  proposal named by the ground-truth class covering most of its pixels
  (``sigmoid(m_q) > 0.5``, ignored pixels not counted)::

      S_c(p) = sum_q (1 - p_q(void)) [y_q = c] sigmoid(m_q(p))

  (MaskFormer's semantic inference, Cheng et al., NeurIPS 2021, Sec. 3.4,
  with one-hot class probabilities): the ceiling of the mask proposals under
  a perfect classifier;
* ``oracle_masks``: one ground-truth mask per class present in the image,
  named by the method's own CLIP classifier (argmax over the vocabulary):
  the ceiling of that classifier under perfect masks. Heads with a
  ``region_classifier`` (ZegFormer, OVSeg) classify the masked crop with
  :class:`~mmovss.models.utils.RegionCLIPClassifier` (the CLIP branch's class
  embeddings); FC-CLIP's head classifies the frozen CLIP's embeddings
  mask-pooled inside the mask (its out-of-vocabulary classifier, Yu et al.,
  NeurIPS 2023, Sec. 3.3); OpenSeg's head classifies its own region
  embedding of the mask (its pixel features pooled inside the mask and
  projected, Ghiasi et al., ECCV 2022, Sec. 3.2; it has no "no object"
  score, so every proposal counts in ``oracle_labels``). Other heads (SAN)
  have no such separate classifier and get no ``oracle_masks`` run.

The ``oracle_masks`` run also counts, per class, how many ground-truth
segments the classifier names right and, of the others, how many it gives a
seen or an unseen name (``segment_naming``; the split of the evaluator's
``unseen_classes``): the mIoU of that run mixes a segment's size and the
classes' false positives, the segment counts say which segments are misnamed.
"""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .ov_iou_metric import unseen_class_indices
from .side_by_side import (
    build_evaluators,
    build_test_loader,
    evaluate_quietly,
    use_dataset_vocabulary,
)

__all__ = ['ORACLE_RUNS', 'gt_at_input', 'present_classes', 'majority_labels',
           'oracle_label_scores', 'gt_segment_logits', 'segment_label_scores',
           'mask_classifier_kind', 'SegmentNaming',
           'stage_oracles', 'format_oracle_report']

#: Runs of :func:`stage_oracles`, in report order.
ORACLE_RUNS = ('model', 'oracle_labels', 'oracle_masks')


def gt_at_input(gt: Tensor, meta: dict, input_hw, ignore_index: int = 255) -> Tensor:
    """Ground-truth labels placed like the image in the network input.

    Args:
        gt (Tensor): (H, W) labels at ``meta['ori_shape']``.
        meta (dict): The sample's metainfo (``img_shape``, ``padding_size``
            ``[left, right, top, bottom]`` of mmseg's data preprocessor).
        input_hw (Sequence[int]): (H, W) of the batch input.
        ignore_index (int): Label of padded pixels.

    Returns:
        Tensor: (H_in, W_in) int64 labels, resized (nearest) to ``img_shape``
        and padded with ``ignore_index``.
    """
    if meta.get('flip', False):
        raise ValueError('stage oracles: the test pipeline flips the image; '
                         'remove RandomFlip / test-time augmentation from '
                         'test_dataloader.dataset.pipeline.')
    h, w = meta.get('img_shape', gt.shape[-2:])[:2]
    gt = gt.long()
    if tuple(gt.shape[-2:]) != (h, w):
        gt = F.interpolate(gt[None, None].float(), size=(h, w), mode='nearest')[0, 0].long()
    left, _, top, _ = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    out = gt.new_full(tuple(input_hw), ignore_index)
    out[top:top + h, left:left + w] = gt
    return out


def present_classes(gt: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """(K,) int64, the classes in ``[0, num_classes)`` that label a pixel of
    ``gt`` (ascending; ``ignore_index`` and other values left out)."""
    present = [c for c in torch.unique(gt).tolist()
               if c != ignore_index and 0 <= c < num_classes]
    return torch.tensor(present, dtype=torch.long, device=gt.device)


def majority_labels(mask_logits: Tensor, gt: Tensor, num_classes: int,
                    ignore_index: int = 255):
    """The ground-truth class covering most pixels of every proposal.

    Args:
        mask_logits (Tensor): (Q, H, W) mask logits at the size of ``gt``.
        gt (Tensor): (H, W) labels.
        num_classes (int): ``C``; labels outside ``[0, C)`` are ignored.
        ignore_index (int): Label never counted.

    Returns:
        tuple[Tensor, Tensor]: (Q,) int64 classes and (Q,) bool, proposals
        with at least one counted pixel (the others have no class).
    """
    binary = (mask_logits.float().sigmoid() > 0.5).flatten(1).float()
    labels = gt.flatten()
    classes = present_classes(gt, num_classes, ignore_index)
    if not len(classes):
        empty = torch.zeros(binary.shape[0], dtype=torch.long, device=binary.device)
        return empty, empty.bool()
    # (HW, K) over the classes present only: ADE-847 stays small
    counts = binary @ (labels[:, None] == classes[None]).float()  # (Q, K)
    return classes[counts.argmax(dim=1)], counts.sum(dim=1) > 0


def oracle_label_scores(mask_logits: Tensor, class_logits: Tensor, gt: Tensor,
                        ignore_index: int = 255) -> Tensor:
    """``S_c = sum_q (1 - p_q(void)) [y_q = c] sigmoid(m_q)`` of one image.

    Args:
        mask_logits (Tensor): (Q, H, W) mask logits at the size of ``gt``.
        class_logits (Tensor): (Q, C + 1) class logits, void last.
        gt (Tensor): (H, W) labels.

    Returns:
        Tensor: (C, H, W) scores.
    """
    num_classes = class_logits.shape[-1] - 1
    classes, named = majority_labels(mask_logits, gt, num_classes, ignore_index)
    objectness = 1.0 - class_logits.float().softmax(dim=-1)[:, -1]
    probs = F.one_hot(classes, num_classes).float() * (objectness * named.float())[:, None]
    return torch.einsum('qc,qhw->chw', probs, mask_logits.float().sigmoid())


def gt_segment_logits(gt: Tensor, num_classes: int, ignore_index: int = 255,
                      value: float = 20.0):
    """One mask per class present in ``gt``, as logits (+-``value``).

    Returns:
        tuple[Tensor, Tensor]: (K, H, W) mask logits and (K,) their classes.
    """
    classes = present_classes(gt, num_classes, ignore_index)
    masks = gt[None] == classes[:, None, None]
    return (masks.float() * 2 - 1) * value, classes


def segment_label_scores(gt: Tensor, segment_classes: Tensor, predicted: Tensor,
                         num_classes: int) -> Tensor:
    """(C, H, W) one-hot scores: every pixel of ground-truth segment ``k``
    (class ``segment_classes[k]``) gets class ``predicted[k]``; other pixels
    (ignored ones) class 0."""
    labels = torch.zeros_like(gt)
    for cls, pred in zip(segment_classes.tolist(), predicted.tolist()):
        labels[gt == cls] = pred
    return F.one_hot(labels, num_classes).permute(2, 0, 1).float()


def _mask_classification_head(model):
    """The model's decode head, checked: proposals (``forward_sets``) and
    whole-image inference."""
    head = model.decode_head
    if not hasattr(head, 'forward_sets'):
        raise ValueError(f'stage oracles need a mask-classification head '
                         f'(forward_sets: ZegFormer, OVSeg, SAN, FC-CLIP, '
                         f'OpenSeg); '
                         f'{type(head).__name__} predicts per-pixel scores.')
    if model.test_cfg.get('mode', 'whole') != 'whole':
        raise ValueError("stage oracles run whole-image inference; set "
                         "--cfg-options model.test_cfg.mode=whole.")
    return head


def mask_classifier_kind(head) -> Optional[str]:
    """How ``head`` names a given mask: ``'crops'`` (CLIP on masked crops,
    a ``region_classifier``), ``'pooling'`` (FC-CLIP's mask-pooled
    out-of-vocabulary classifier), ``'regions'`` (OpenSeg's region
    embeddings) or None."""
    if getattr(head, 'region_classifier', None) is not None:
        return 'crops'
    if hasattr(head, 'pooled_clip_embeddings') and hasattr(head, 'out_vocab_logits'):
        return 'pooling'
    if hasattr(head, 'region_embeddings_of_masks') and hasattr(head, 'region_class_logits'):
        return 'regions'
    return None


def _name_gt_segments(head, kind: str, feats, b: int, seg_logits: Tensor,
                      class_embeds) -> Tensor:
    """(K,) classes the head's CLIP classifier gives the (K, H, W) mask
    logits of image ``b``."""
    if kind == 'crops':
        region_embeds = head.region_class_embeds(class_embeds) \
            if hasattr(head, 'region_class_embeds') else class_embeds
        logits, _ = head.region_classifier(feats[-1][b:b + 1], seg_logits[None],
                                           region_embeds)
    else:
        image_feats = [f[b:b + 1] for f in feats]
        if kind == 'regions':
            regions = head.region_embeddings_of_masks(image_feats, seg_logits[None])
            logits = head.region_class_logits(regions, class_embeds)
        else:
            pooled = head.pooled_clip_embeddings(image_feats, seg_logits[None])
            logits = head.out_vocab_logits(pooled, class_embeds)
    return logits[0].argmax(dim=-1)


class SegmentNaming:
    """Per-class counts of ground-truth segments named by a CLIP classifier.

    Args:
        classes (Sequence[str]): The vocabulary (``dataset_meta['classes']``).
        unseen (Sequence[int], optional): Indices of the unseen classes.
    """

    def __init__(self, classes, unseen: Optional[List[int]] = None):
        self.classes = list(classes)
        self.unseen = set(unseen or [])
        n = len(self.classes)
        # rows: segments, named right, named a seen class, named an unseen class
        self.counts = torch.zeros(4, n, dtype=torch.long)

    def add(self, truth: Tensor, named: Tensor) -> None:
        """Counts segments of classes ``truth`` named ``named`` ((K,) each)."""
        truth, named = truth.cpu(), named.cpu()
        wrong = named != truth
        named_unseen = torch.tensor([int(c) in self.unseen for c in named.tolist()],
                                    dtype=torch.bool)
        for row, keep in enumerate((torch.ones_like(wrong), ~wrong,
                                    wrong & ~named_unseen, wrong & named_unseen)):
            self.counts[row].index_add_(0, truth[keep], torch.ones(int(keep.sum()),
                                                                   dtype=torch.long))

    def _summary(self, columns) -> dict:
        segments, right, as_seen, as_unseen = (int(r[columns].sum()) for r in self.counts)
        return dict(segments=segments,
                    named_right=round(100.0 * right / segments, 2) if segments else None,
                    wrong_as_seen=as_seen, wrong_as_unseen=as_unseen)

    def result(self) -> dict:
        """``groups`` (``all``, and ``seen`` / ``unseen`` with a split) and
        ``per_class`` (classes with segments): segment count, percent named
        right and the wrong names' seen / unseen counts."""
        n = len(self.classes)
        groups = {'all': self._summary(list(range(n)))}
        if self.unseen:
            groups['seen'] = self._summary([c for c in range(n) if c not in self.unseen])
            groups['unseen'] = self._summary(sorted(self.unseen))
        per_class = {self.classes[c]: self._summary([c]) for c in range(n)
                     if self.counts[0, c] > 0}
        return dict(groups=groups, per_class=per_class)


@torch.no_grad()
def _oracle_batch(model, head, data: dict, masks_kind: Optional[str],
                  naming: Optional[SegmentNaming] = None) -> Dict[str, list]:
    ignore = int(getattr(head, 'ignore_index', 255))
    batch = model.data_preprocessor(copy.deepcopy(data), False)
    inputs, samples = batch['inputs'], batch['data_samples']
    feats = model.extract_feat(inputs)
    class_embeds = model.head_class_embeds(model.class_embeddings())
    num_classes = class_embeds.num_classes
    gts = [gt_at_input(s.gt_sem_seg.data[0], s.metainfo, inputs.shape[-2:], ignore)
           for s in samples]
    runs = {}
    for name in ('oracle_labels', 'oracle_masks')[:1 + (masks_kind is not None)]:
        scores = []
        if name == 'oracle_labels':
            masks, logits = head.forward_sets(feats, class_embeds)
            masks = F.interpolate(masks[-1].float(), size=inputs.shape[-2:],
                                  mode='bilinear', align_corners=False)
            for b, gt in enumerate(gts):
                scores.append(oracle_label_scores(masks[b], logits[-1][b], gt, ignore))
        else:
            for b, gt in enumerate(gts):
                seg_logits, classes = gt_segment_logits(gt, num_classes, ignore)
                predicted = classes
                if len(classes):
                    predicted = _name_gt_segments(head, masks_kind, feats, b,
                                                  seg_logits, class_embeds)
                    if naming is not None:
                        naming.add(classes, predicted)
                scores.append(segment_label_scores(gt, classes, predicted, num_classes))
        runs[name] = model.postprocess_result(torch.stack(scores), copy.deepcopy(samples))
    return runs


def stage_oracles(cfg, checkpoint: Optional[str] = None,
                  max_images: Optional[int] = None,
                  model=None) -> Dict[str, object]:
    """Scores a mask-classification segmentor and its two stage oracles.

    Args:
        cfg (mmengine.Config): The config (``--cfg-options`` applied), with
            ``test_dataloader`` and ``test_evaluator``.
        checkpoint (str, optional): Trained weights, loaded strictly.
        max_images (int, optional): Stop after this many images.
        model (nn.Module, optional): An already built model (instead of
            building ``cfg.model`` with ``checkpoint``).

    Returns:
        dict: ``metrics`` (run name -> metric dict, runs of
        :data:`ORACLE_RUNS`; ``oracle_masks`` only for heads with a separate
        CLIP classifier, :func:`mask_classifier_kind`), ``images`` and, with
        an ``oracle_masks`` run, ``segment_naming``
        (:meth:`SegmentNaming.result`).
    """
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    loader = build_test_loader(cfg)
    metainfo = loader.dataset.metainfo
    if model is None:
        model = MODELS.build(copy.deepcopy(cfg.model))
        if checkpoint is not None:  # as tools/test.py: a foreign file names its keys
            from mmovss.runtime import load_model_checkpoint_strictly
            try:
                load_model_checkpoint_strictly(model, checkpoint)
            except RuntimeError as err:
                raise ValueError(str(err)) from None
    model.eval()
    use_dataset_vocabulary(model, loader)  # an explicit one is checked, as tools/test.py
    head = _mask_classification_head(model)
    masks_kind = mask_classifier_kind(head)
    runs: List[str] = [r for r in ORACLE_RUNS if masks_kind or r != 'oracle_masks']
    evaluators = build_evaluators(cfg, runs, metainfo)
    naming = SegmentNaming(metainfo['classes'],
                           unseen_class_indices(cfg.test_evaluator, metainfo['classes'])) \
        if masks_kind else None
    images = 0
    with torch.no_grad():
        for data in loader:
            outputs = {'model': model.test_step(copy.deepcopy(data))}
            outputs.update(_oracle_batch(model, head, data, masks_kind, naming))
            for run in runs:
                evaluators[run].process(data_samples=outputs[run], data_batch=data)
            images += len(outputs['model'])
            if max_images is not None and images >= max_images:
                break
    metrics = evaluate_quietly(evaluators, images)
    result = dict(metrics=metrics, images=images)
    if naming is not None:
        result['segment_naming'] = naming.result()
    return result


def format_oracle_report(result: dict) -> str:
    """One line per run: every numeric metric; then the ground-truth segments
    named right by the CLIP classifier, per group."""
    metrics = result['metrics']
    keys = [k for k, v in next(iter(metrics.values())).items() if isinstance(v, float)]
    lines = [f"{'run':<14}" + ''.join(f'{k:>12}' for k in keys)]
    for run, values in metrics.items():
        lines.append(f'{run:<14}' + ''.join(f'{values[k]:12.2f}' for k in keys))
    lines.append(f"{result['images']} images")
    naming = result.get('segment_naming')
    if naming:
        parts = [f"{group} {v['named_right']}% of {v['segments']} "
                 f"(wrong: {v['wrong_as_seen']} as seen, {v['wrong_as_unseen']} as unseen)"
                 for group, v in naming['groups'].items() if v['segments']]
        lines.append('oracle_masks, ground-truth segments named right: ' + '; '.join(parts))
    return '\n'.join(lines)
