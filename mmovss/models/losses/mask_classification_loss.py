"""Set-prediction loss of mask-classification heads (Mask2Former criterion).

For each set of predictions (the final one and every deeply supervised
intermediate one) the queries are matched one-to-one to the ground-truth
masks (:class:`~mmovss.models.utils.HungarianMaskMatcher`), then (Cheng et
al., Mask2Former, CVPR 2022, Sec. 4.1, "Loss"; used by SAN, Xu et al.,
CVPR 2023, Sec. 3.4, and FC-CLIP, Yu et al., NeurIPS 2023)::

    L = l_cls * CE(z, y) + l_mask * BCE(m, g) + l_dice * Dice(m, g)

* ``CE``: cross-entropy of every query's class logits (C classes + void);
  unmatched queries are labelled void and weighted ``no_object_weight``
  (0.1), and the loss is the weighted mean.
* ``BCE`` and ``Dice``: on ``num_points`` points per matched mask chosen by
  uncertainty-based importance sampling (PointRend, Kirillov et al., CVPR
  2020), summed over masks and divided by the number of ground-truth masks
  of the batch.

The loss terms are mmseg's ``CrossEntropyLoss`` and ``DiceLoss``; point
selection is mmseg's ``get_uncertain_point_coords_with_randomness``.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from mmcv.ops import point_sample
from mmengine.dist import all_reduce
from mmengine.structures import InstanceData
from mmseg.models.utils import get_uncertain_point_coords_with_randomness
from mmseg.registry import MODELS
from mmseg.utils import SampleList, seg_data_to_instance_data

from ..utils.hungarian import HungarianMaskMatcher

__all__ = ['MaskClassificationLoss']


@MODELS.register_module()
class MaskClassificationLoss(nn.Module):
    """Hungarian-matched class + point-sampled mask losses.

    Args:
        match_costs (Sequence[dict], optional): mmseg match costs; default
            Mask2Former's (class 2, BCE 5, Dice 5).
        num_points (int): Points per mask, for matching and for the losses.
        oversample_ratio (float): PointRend oversampling ratio.
        importance_sample_ratio (float): Share of points picked by
            uncertainty (the rest uniformly).
        no_object_weight (float): Class-loss weight of unmatched queries.
        loss_cls (dict): Class loss (mmseg ``CrossEntropyLoss``).
        loss_mask (dict): Mask loss (sigmoid ``CrossEntropyLoss``).
        loss_dice (dict): Dice loss (mmseg ``DiceLoss``).
    """

    def __init__(self,
                 match_costs: Optional[Sequence[dict]] = None,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 no_object_weight: float = 0.1,
                 loss_cls: dict = dict(type='CrossEntropyLoss',
                                       loss_weight=2.0, loss_name='loss_cls'),
                 loss_mask: dict = dict(type='CrossEntropyLoss',
                                        use_sigmoid=True, loss_weight=5.0,
                                        loss_name='loss_mask'),
                 loss_dice: dict = dict(type='DiceLoss', naive_dice=True,
                                        eps=1.0, ignore_index=None,
                                        loss_weight=5.0,
                                        loss_name='loss_dice')):
        super().__init__()
        self.matcher = HungarianMaskMatcher(match_costs, num_points)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.no_object_weight = no_object_weight
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)

    @staticmethod
    def targets_from_seg(batch_data_samples: SampleList,
                         ignore_index: int = 255) -> List[InstanceData]:
        """One binary mask per class present in each ``gt_sem_seg``."""
        return seg_data_to_instance_data(ignore_index, batch_data_samples)

    def forward(self, class_logits: Tensor, mask_logits: Tensor,
                gt_instances: List[InstanceData]) -> Dict[str, Tensor]:
        """Losses of one set of predictions.

        Args:
            class_logits (Tensor): (B, Q, C + 1), void last.
            mask_logits (Tensor): (B, Q, h, w).
            gt_instances (list[InstanceData]): ``labels`` (K,) and ``masks``
                (K, H, W) per image.

        Returns:
            dict[str, Tensor]: The three weighted losses, named by their
            ``loss_name``.
        """
        if class_logits.shape[:2] != mask_logits.shape[:2] or \
                len(gt_instances) != class_logits.shape[0]:
            raise ValueError(
                f'MaskClassificationLoss: class logits '
                f'{tuple(class_logits.shape)}, mask logits '
                f'{tuple(mask_logits.shape)} and {len(gt_instances)} targets '
                f'do not describe the same batch of queries.')
        batch, num_queries, num_cls = class_logits.shape
        matches = self.matcher.match_batch(class_logits.detach(),
                                           mask_logits.detach(), gt_instances)
        labels = class_logits.new_full((batch, num_queries), num_cls - 1,
                                       dtype=torch.long)
        weights = class_logits.new_full((batch, num_queries),
                                        self.no_object_weight)
        pred_masks, gt_masks = [], []
        for b, ((q_idx, g_idx), gt) in enumerate(zip(matches, gt_instances)):
            labels[b, q_idx] = gt.labels[g_idx].long()
            weights[b, q_idx] = 1.0
            pred_masks.append(mask_logits[b, q_idx])
            gt_masks.append(gt.masks[g_idx])
        losses = {
            self.loss_cls.loss_name: self.loss_cls(
                class_logits.flatten(0, 1), labels.flatten(),
                weight=weights.flatten(), avg_factor=weights.sum())
        }
        num_masks = class_logits.new_tensor(
            float(sum(len(g.labels) for g in gt_instances)))
        all_reduce(num_masks, op='mean')
        num_masks = num_masks.clamp(min=1.0)
        pred_masks = torch.cat(pred_masks)
        if pred_masks.shape[0] == 0:  # keep the graph, contribute zero
            zero = mask_logits.sum() * 0.0
            losses[self.loss_mask.loss_name] = zero
            losses[self.loss_dice.loss_name] = zero
            return losses
        gt_masks = torch.cat(gt_masks).to(pred_masks)
        with torch.no_grad():
            points = get_uncertain_point_coords_with_randomness(
                pred_masks[:, None], None, self.num_points,
                self.oversample_ratio, self.importance_sample_ratio)
            gt_points = point_sample(gt_masks[:, None], points)[:, 0]
        pred_points = point_sample(pred_masks[:, None], points)[:, 0]
        losses[self.loss_mask.loss_name] = self.loss_mask(
            pred_points, gt_points, avg_factor=num_masks * self.num_points)
        losses[self.loss_dice.loss_name] = self.loss_dice(
            pred_points, gt_points, avg_factor=num_masks)
        return losses

    def loss_sets(self, class_logits: Sequence[Tensor],
                  mask_logits: Sequence[Tensor],
                  gt_instances: List[InstanceData],
                  names: Optional[Sequence[str]] = None
                  ) -> Dict[str, Tensor]:
        """Losses of several prediction sets (deep supervision).

        The last set's losses keep their names; set ``i`` of the others is
        prefixed ``names[i]`` (default ``d{i}.``).
        """
        if len(class_logits) != len(mask_logits):
            raise ValueError('loss_sets: one class-logit tensor per mask-logit '
                             'tensor is needed.')
        names = list(names) if names is not None else \
            [f'd{i}.' for i in range(len(class_logits) - 1)]
        losses = dict()
        for i, (cls, mask) in enumerate(zip(class_logits, mask_logits)):
            prefix = '' if i == len(class_logits) - 1 else names[i]
            for key, value in self.forward(cls, mask, gt_instances).items():
                losses[prefix + key] = value
        return losses
