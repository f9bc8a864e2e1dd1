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

Inputs that custom data and unstable training produce are handled as follows:

* no ground-truth mask (an image whose pixels are all ignored, or all of
  classes outside the vocabulary): nothing is matched, every query is
  trained as void;
* a ground-truth mask of zero area (possible after cropping, or for targets
  built outside ``seg_data_to_instance_data``): it has no pixel to match and
  is left out of the matching, so no query is trained to predict an empty
  mask for it;
* non-finite predictions (NaN/inf class or mask logits, e.g. after training
  diverged, an fp16 overflow, or NaN in an input image) and a non-finite
  cost matrix: :class:`NonFiniteMatchingCost` (a ``ValueError``) naming the
  image (its ``img_path`` when the targets carry it, else its index in the
  batch) instead of scipy's "matrix contains invalid numeric entries".
"""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmcv.ops import point_sample
from mmengine.structures import InstanceData
from mmseg.registry import TASK_UTILS

__all__ = ['HungarianMaskMatcher', 'DEFAULT_MATCH_COSTS', 'NonFiniteMatchingCost']


class NonFiniteMatchingCost(ValueError):
    """The matching cost of an image has NaN or infinite entries."""

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
              gt_labels: Tensor, gt_masks: Tensor,
              sample: str = 'the image') -> Tuple[Tensor, Tensor]:
        """Matches the queries of one image.

        Args:
            class_logits (Tensor): (Q, C + 1) class logits, void last.
            mask_logits (Tensor): (Q, h, w) mask logits.
            gt_labels (Tensor): (K,) class indices in ``[0, C)``.
            gt_masks (Tensor): (K, H, W) binary masks (any size).
            sample (str): How to name the image in error messages.

        Returns:
            tuple[Tensor, Tensor]: Matched query indices and the matching
            ground-truth indices (into the K targets), each (min(Q, K'),)
            for the K' targets of non-zero area.

        Raises:
            NonFiniteMatchingCost: NaN/inf logits or costs (see the module
                doc).
        """
        empty = gt_labels.new_zeros(0, dtype=torch.long)
        if gt_labels.numel() == 0:
            return empty, empty
        for what, tensor in (('class logits', class_logits), ('mask logits', mask_logits)):
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                raise NonFiniteMatchingCost(
                    f'Hungarian matching of {sample}: the {what} {tuple(tensor.shape)} '
                    f'have {int(torch.isnan(tensor).sum())} NaN and '
                    f'{int(torch.isinf(tensor).sum())} infinite entries, so the cost '
                    f'matrix is not finite. Training has probably diverged (lower the '
                    f'learning rate, keep gradient clipping, train in fp32 instead of '
                    f'fp16) or the input image holds NaN/inf values; check this image.')
        # Targets of zero area have no pixel to match (module doc): left out.
        keep = gt_masks.flatten(1).any(dim=1).nonzero()[:, 0]
        if keep.numel() == 0:
            return empty, empty
        full_index = keep if keep.numel() < gt_labels.numel() else None
        gt_labels, gt_masks = gt_labels[keep], gt_masks[keep]
        num_gts = gt_labels.numel()
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
        try:
            query_idx, gt_idx = self.assigner.assign(
                pred_instances=InstanceData(scores=class_logits.float(),
                                            masks=pred),
                gt_instances=InstanceData(labels=gt_labels, masks=gt))
        except ValueError as err:  # scipy: "matrix contains invalid numeric entries"
            if 'invalid numeric' not in str(err):
                raise
            raise NonFiniteMatchingCost(
                f'Hungarian matching of {sample}: the cost matrix is not finite '
                f'({err}) although the logits are; check the match-cost weights.') from err
        gt_idx = gt_idx.long()
        if full_index is not None:
            gt_idx = full_index[gt_idx]
        return query_idx.long(), gt_idx

    def match_batch(self, class_logits: Tensor, mask_logits: Tensor,
                    gt_instances: List[InstanceData]
                    ) -> List[Tuple[Tensor, Tensor]]:
        """:meth:`match` for every image of a batch (``labels``/``masks``).

        Errors name an image by the ``img_path`` of its targets' metainfo
        when present, else by its index in the batch.
        """
        results = []
        for i, (c, m, g) in enumerate(zip(class_logits, mask_logits, gt_instances)):
            path = g.metainfo.get('img_path') if hasattr(g, 'metainfo') else None
            sample = f'image {i} of the batch' + (f' ({path})' if path else '')
            results.append(self.match(c, m, g.labels, g.masks, sample=sample))
        return results
