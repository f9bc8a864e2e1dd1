"""Bipartite matching of mask queries to ground-truth masks.

The cost of assigning query ``q`` to ground truth ``k`` is a weighted sum
of a class cost ``-softmax(z_q)_{y_k}``, a binary cross-entropy and a Dice
cost between mask ``m_q`` and ground-truth mask ``g_k``, both computed on
``num_points`` points sampled uniformly at random (the same points for
every pair), and the assignment minimising the total cost is found by the
Hungarian algorithm (Mask2Former, Cheng et al., CVPR 2022, Sec. 4.1 and
"Loss"; DETR, Carion et al., ECCV 2020, Eq. 1). The cost terms and the
``scipy.optimize.linear_sum_assignment`` solver are mmseg's
(``HungarianAssigner``, ``ClassificationCost``, ``CrossEntropyLossCost``,
``DiceCost``); this module samples the points and works for any number of
classes (the vocabulary may change between calls).
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmcv.ops import point_sample
from mmengine.structures import InstanceData
from torch import Tensor

from mmseg.registry import TASK_UTILS

__all__ = ['HungarianMaskMatcher', 'DEFAULT_MATCH_COSTS']

#: Mask2Former's costs (class 2, mask BCE 5, Dice 5), used by SAN and FC-CLIP.
DEFAULT_MATCH_COSTS = (
    dict(type='ClassificationCost', weight=2.0),
    dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
    dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
)


class HungarianMaskMatcher:
    """One-to-one matching of mask queries to ground-truth masks.

    Args:
        match_costs (Sequence[dict]): mmseg match-cost configs
            (``TASK_UTILS``); defaults to :data:`DEFAULT_MATCH_COSTS`.
        num_points (int): Points sampled per image for the mask costs.
    """

    def __init__(self,
                 match_costs: Optional[Sequence[dict]] = None,
                 num_points: int = 12544):
        if num_points < 1:
            raise ValueError(f'HungarianMaskMatcher: num_points must be >= 1, '
                             f'got {num_points}.')
        costs = [dict(c) for c in (match_costs or DEFAULT_MATCH_COSTS)]
        self.assigner = TASK_UTILS.build(
            dict(type='HungarianAssigner', match_costs=costs))
        self.num_points = num_points

    @torch.no_grad()
    def match(self, class_logits: Tensor, mask_logits: Tensor,
              gt_labels: Tensor, gt_masks: Tensor) -> Tuple[Tensor, Tensor]:
        """Matches the queries of one image.

        Args:
            class_logits (Tensor): (Q, C + 1) class logits, void last.
            mask_logits (Tensor): (Q, h, w) mask logits.
            gt_labels (Tensor): (K,) class indices in ``[0, C)``.
            gt_masks (Tensor): (K, H, W) binary masks (any size).

        Returns:
            tuple[Tensor, Tensor]: Matched query indices and the matching
            ground-truth indices, each (min(Q, K),).
        """
        num_gts = gt_labels.numel()
        if num_gts == 0:
            empty = gt_labels.new_zeros(0, dtype=torch.long)
            return empty, empty
        if int(gt_labels.max()) >= class_logits.shape[-1] - 1:
            raise ValueError(
                f'Ground-truth label {int(gt_labels.max())} is not a class of '
                f'the {class_logits.shape[-1] - 1}-class vocabulary; check '
                f'that the dataset classes and the vocabulary agree.')
        points = torch.rand(1, self.num_points, 2, device=mask_logits.device)
        pred = point_sample(mask_logits[:, None].float(),
                            points.expand(mask_logits.shape[0], -1, -1))[:, 0]
        gt = point_sample(gt_masks[:, None].to(pred),
                          points.expand(num_gts, -1, -1))[:, 0]
        query_idx, gt_idx = self.assigner.assign(
            pred_instances=InstanceData(scores=class_logits.float(),
                                        masks=pred),
            gt_instances=InstanceData(labels=gt_labels, masks=gt))
        return query_idx.long(), gt_idx.long()

    def match_batch(self, class_logits: Tensor, mask_logits: Tensor,
                    gt_instances: List[InstanceData]
                    ) -> List[Tuple[Tensor, Tensor]]:
        """:meth:`match` for every image of a batch (``labels``/``masks``)."""
        return [
            self.match(c, m, g.labels, g.masks)
            for c, m, g in zip(class_logits, mask_logits, gt_instances)
        ]
