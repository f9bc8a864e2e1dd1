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
  NeurIPS 2023, Sec. 3.3). Other heads (SAN) have no such separate
  classifier and get no ``oracle_masks`` run.
"""
import copy
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .side_by_side import build_evaluators, evaluate_quietly

__all__ = ['ORACLE_RUNS', 'gt_at_input', 'present_classes', 'majority_labels',
           'oracle_label_scores', 'gt_segment_logits', 'segment_label_scores',
           'mask_classifier_kind', 'stage_oracles', 'format_oracle_report']

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
                         f'(forward_sets: ZegFormer, OVSeg, SAN, FC-CLIP); '
                         f'{type(head).__name__} predicts per-pixel scores.')
    if model.test_cfg.get('mode', 'whole') != 'whole':
        raise ValueError("stage oracles run whole-image inference; set "
                         "--cfg-options model.test_cfg.mode=whole.")
    return head


def mask_classifier_kind(head) -> Optional[str]:
    """How ``head`` names a given mask with CLIP: ``'crops'`` (a
    ``region_classifier``), ``'pooling'`` (FC-CLIP's mask-pooled
    out-of-vocabulary classifier) or None."""
    if getattr(head, 'region_classifier', None) is not None:
        return 'crops'
    if hasattr(head, 'pooled_clip_embeddings') and hasattr(head, 'out_vocab_logits'):
        return 'pooling'
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
        pooled = head.pooled_clip_embeddings(image_feats, seg_logits[None])
        logits = head.out_vocab_logits(pooled, class_embeds)
    return logits[0].argmax(dim=-1)


@torch.no_grad()
def _oracle_batch(model, head, data: dict, masks_kind: Optional[str]) -> Dict[str, list]:
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
        CLIP classifier, :func:`mask_classifier_kind`) and ``images``.
    """
    from mmengine.runner import Runner, load_checkpoint
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
    metainfo = loader.dataset.metainfo
    if model is None:
        model = MODELS.build(copy.deepcopy(cfg.model))
        if checkpoint is not None:
            load_checkpoint(model, checkpoint, map_location='cpu', strict=True,
                            logger='silent')
    model.eval()
    if hasattr(model, 'set_dataset_vocabulary'):
        model.set_dataset_vocabulary(metainfo)
    head = _mask_classification_head(model)
    masks_kind = mask_classifier_kind(head)
    runs: List[str] = [r for r in ORACLE_RUNS if masks_kind or r != 'oracle_masks']
    evaluators = build_evaluators(cfg, runs, metainfo)
    images = 0
    with torch.no_grad():
        for data in loader:
            outputs = {'model': model.test_step(copy.deepcopy(data))}
            outputs.update(_oracle_batch(model, head, data, masks_kind))
            for run in runs:
                evaluators[run].process(data_samples=outputs[run], data_batch=data)
            images += len(outputs['model'])
            if max_images is not None and images >= max_images:
                break
    metrics = evaluate_quietly(evaluators, images)
    return dict(metrics=metrics, images=images)


def format_oracle_report(result: dict) -> str:
    """One line per run: every numeric metric."""
    metrics = result['metrics']
    keys = [k for k, v in next(iter(metrics.values())).items() if isinstance(v, float)]
    lines = [f"{'run':<14}" + ''.join(f'{k:>12}' for k in keys)]
    for run, values in metrics.items():
        lines.append(f'{run:<14}' + ''.join(f'{values[k]:12.2f}' for k in keys))
    lines.append(f"{result['images']} images")
    return '\n'.join(lines)
