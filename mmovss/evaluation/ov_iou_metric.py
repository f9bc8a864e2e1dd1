"""IoU metric for open-vocabulary segmentation (any number of classes).

Extends mmseg's :class:`~mmseg.evaluation.IoUMetric` (same intersection /
union accumulation and the same per-class formulas) with:

* labels above 255: the ignore index comes from the dataset
  (``dataset_meta['ignore_index']``, 65535 for ADE-847 / PC-459) unless set,
  and ``output_dir`` files are 16-bit PNGs when a class index exceeds 255;
* a seen/unseen split: ``mIoU_seen``, ``mIoU_unseen`` and their harmonic
  mean ``hIoU`` (Xian et al., "Semantic projection network for zero- and
  few-label semantic segmentation", CVPR 2019);
* optionally the mean over the classes present in the ground truth;
* a predicted or ground-truth label that is neither a class nor the ignore
  index raises a ``ValueError`` naming the image (mmseg's histograms drop
  such pixels silently, e.g. when the model's vocabulary is larger than
  the dataset's class list).

Which classes enter a mean:

* ``mIoU`` (default, MMSegmentation's rule): every class whose union of
  prediction and ground truth is not empty; classes absent from both are
  left out (their IoU is 0/0), a class that is only predicted counts as 0.
* ``mIoU_gt_present`` (``report_gt_present=True``): only classes that occur
  in the ground truth. This is the rule of detectron2's ``SemSegEvaluator``
  as of its current code (``iou_valid = acc_valid & (union > 0)`` with
  ``acc_valid = pos_gt > 0``), used by the detectron2-based OVSS repos.
  It matters for PC-459 / A-847, where many classes are missing from the
  ground truth; ``docs/dataset_prepare.md`` says which rule published
  numbers used where known.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from PIL import Image
from prettytable import PrettyTable

from mmengine.logging import MMLogger, print_log
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

__all__ = ['OpenVocabIoUMetric', 'harmonic_mean', 'resolve_class_specs',
           'unseen_class_indices']

ClassSpec = Union[int, str]


def harmonic_mean(a: float, b: float) -> float:
    """Harmonic mean ``2ab / (a + b)``; 0 when both are 0, NaN if one is NaN.

    Args:
        a (float): First value (e.g. mIoU of the seen classes).
        b (float): Second value (e.g. mIoU of the unseen classes).

    Returns:
        float: The harmonic mean.
    """
    if np.isnan(a) or np.isnan(b):
        return float('nan')
    if a + b == 0:
        return 0.0
    return 2.0 * a * b / (a + b)


def resolve_class_specs(classes: Sequence[str], specs: Sequence[ClassSpec],
                        arg: str) -> List[int]:
    """Class indices of ``specs`` (indices, whole class entries or one synonym).

    Args:
        classes: The dataset's class entries (``dataset_meta['classes']``).
        specs: Indices or names, e.g. ``unseen_classes`` of the metric.
        arg: The argument named in error messages.

    Returns:
        Sorted unique indices.

    Raises:
        ValueError: An index out of range, a name of no class, or a synonym
            of several classes none of which it is the first name of (a name
            that is one class's first name and another's later synonym
            resolves to the first: the custom-dataset configs name unseen
            classes by their first names).
    """
    classes = list(classes)
    lookup: Dict[str, List[int]] = {}
    for index, entry in enumerate(classes):
        names = {entry.strip()} | {
            s.strip() for s in entry.split(',') if s.strip()}
        for name in names:
            lookup.setdefault(name, []).append(index)
    indices = []
    for spec in specs:
        if isinstance(spec, (int, np.integer)) and not isinstance(
                spec, bool):
            if not 0 <= spec < len(classes):
                raise ValueError(
                    f'OpenVocabIoUMetric: {arg} index {spec} is out of '
                    f'range for {len(classes)} classes.')
            indices.append(int(spec))
            continue
        matches = sorted(set(lookup.get(str(spec).strip(), [])))
        if len(matches) > 1:  # the class it is the first (display) name of, if one
            first = [i for i in matches
                     if classes[i].split(',')[0].strip() == str(spec).strip()]
            matches = first if len(first) == 1 else matches
        if not matches:
            raise ValueError(
                f'OpenVocabIoUMetric: {arg} entry {spec!r} names no class '
                'of the dataset; use an index or a name from '
                'dataset_meta["classes"] (whole entry or one synonym).')
        if len(matches) > 1:
            raise ValueError(
                f'OpenVocabIoUMetric: {arg} entry {spec!r} is a synonym '
                f'of several classes {matches}; use an index or the '
                'whole class entry.')
        indices.append(matches[0])
    return sorted(set(indices))


def unseen_class_indices(evaluator_cfg, classes) -> Optional[List[int]]:
    """Indices of the ``unseen_classes`` of the first metric of an evaluator
    config that has them (``test_evaluator`` as a dict or a list), resolved
    by :func:`resolve_class_specs` as the metric does; None without a split.

    Args:
        evaluator_cfg (dict | list[dict]): E.g. ``cfg.test_evaluator``.
        classes (Sequence[str]): The dataset's class entries.
    """
    metrics = evaluator_cfg if isinstance(evaluator_cfg, (list, tuple)) else [evaluator_cfg]
    for metric in metrics:
        unseen = metric.get('unseen_classes') if hasattr(metric, 'get') else None
        if unseen is not None:
            return resolve_class_specs(classes, unseen, 'unseen_classes')
    return None


@METRICS.register_module()
class OpenVocabIoUMetric(IoUMetric):
    """Per-class IoU/Acc, aAcc/mIoU/mAcc, seen/unseen mIoU and hIoU.

    With the default arguments the returned ``aAcc``/``mIoU``/``mAcc`` equal
    those of mmseg's ``IoUMetric``.

    Args:
        ignore_index (int, optional): Label value left out of the evaluation.
            None takes ``dataset_meta['ignore_index']`` when the dataset sets
            it, else 255. Defaults to None.
        iou_metrics (list[str]): As in ``IoUMetric`` ('mIoU', 'mDice',
            'mFscore'). Defaults to ``['mIoU']``.
        unseen_classes (list[int | str], optional): Classes not seen in
            training, as indices or names. A name matches a class entry when
            it equals the whole entry (``'sofa, couch'``) or one of its
            comma-separated synonyms. Enables ``mIoU_seen``, ``mIoU_unseen``
            and ``hIoU``. Defaults to None.
        seen_classes (list[int | str], optional): Seen classes; defaults to
            every class not in ``unseen_classes``.
        report_gt_present (bool): Also report ``mIoU_gt_present``, the mean
            over the classes present in the ground truth. Defaults to False.
        nan_to_num (int, optional): As in ``IoUMetric``.
        beta (int): As in ``IoUMetric``.
        collect_device (str): As in ``IoUMetric``.
        output_dir (str, optional): Where to write the predicted label maps
            (one PNG per image; 16-bit when a label exceeds 255).
        format_only (bool): Only write ``output_dir`` files.
        prefix (str, optional): As in ``IoUMetric``.
    """

    def __init__(self,
                 ignore_index: Optional[int] = None,
                 iou_metrics: List[str] = ['mIoU'],
                 unseen_classes: Optional[Sequence[ClassSpec]] = None,
                 seen_classes: Optional[Sequence[ClassSpec]] = None,
                 report_gt_present: bool = False,
                 nan_to_num: Optional[int] = None,
                 beta: int = 1,
                 collect_device: str = 'cpu',
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            ignore_index=255 if ignore_index is None else ignore_index,
            iou_metrics=iou_metrics,
            nan_to_num=nan_to_num,
            beta=beta,
            collect_device=collect_device,
            output_dir=output_dir,
            format_only=format_only,
            prefix=prefix,
            **kwargs)
        self._explicit_ignore_index = ignore_index
        if seen_classes is not None and unseen_classes is None:
            raise ValueError(
                'OpenVocabIoUMetric: seen_classes was given without '
                'unseen_classes; give unseen_classes (seen defaults to the '
                'rest) or both.')
        for arg, value in (('unseen_classes', unseen_classes),
                           ('seen_classes', seen_classes)):
            if value is not None and (isinstance(value, (str, int))
                                      or len(value) == 0):
                raise ValueError(
                    f'OpenVocabIoUMetric: {arg} must be a non-empty list of '
                    f'class indices or names, got {value!r}.')
        self.unseen_classes = unseen_classes
        self.seen_classes = seen_classes
        self.report_gt_present = report_gt_present

    def _current_ignore_index(self) -> int:
        if self._explicit_ignore_index is not None:
            return self._explicit_ignore_index
        meta = self.dataset_meta or {}
        return int(meta.get('ignore_index', 255))

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Accumulates intersection/union areas and writes ``output_dir``.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Model outputs with
                ``pred_sem_seg`` and (unless ``format_only``) ``gt_sem_seg``.
        """
        num_classes = len(self.dataset_meta['classes'])
        self.ignore_index = self._current_ignore_index()
        for data_sample in data_samples:
            pred_label = data_sample['pred_sem_seg']['data'].squeeze()
            self._check_range(pred_label, num_classes, data_sample,
                              'prediction')
            if not self.format_only:
                label = data_sample['gt_sem_seg']['data'].squeeze().to(
                    pred_label)
                self._check_range(label, num_classes, data_sample,
                                  'ground truth')
                self.results.append(
                    self.intersect_and_union(pred_label, label, num_classes,
                                             self.ignore_index))
            if self.output_dir is not None:
                self._write_prediction(data_sample, pred_label)

    def _check_range(self, labels, num_classes: int, data_sample: dict,
                     what: str) -> None:
        """Refuses label values that are neither a class nor ignored.

        mmseg's ``intersect_and_union`` drops such values from its
        histograms without a word, which inflates IoU (a prediction for a
        class the dataset does not have never counts as a false positive).

        Raises:
            ValueError: Naming the image, the value and the likely cause.
        """
        bad = (labels < 0) | ((labels >= num_classes) &
                              (labels != self.ignore_index))
        if not bool(bad.any()):
            return
        value = int(labels[bad][0])
        cause = ('the model\'s vocabulary has more classes than the dataset '
                 '(set model.vocabulary to the dataset\'s classes or remove '
                 'it)' if what == 'prediction' else
                 'the label file was not converted for this dataset (see '
                 'docs/dataset_prepare.md) or ignore_index is wrong')
        raise ValueError(
            f'OpenVocabIoUMetric: the {what} of '
            f'{data_sample.get("img_path", "an image")!r} has label {value}, '
            f'outside the {num_classes} classes of the dataset (0..'
            f'{num_classes - 1}, ignore_index {self.ignore_index}); mmseg '
            f'would drop such pixels silently. Likely cause: {cause}.')

    def _output_name(self, img_path: str) -> str:
        """The image's name without suffix, as mmseg names predictions; an image
        whose name another image of this run (in another folder) already took
        gets its parent folders prefixed (``b__000000``), so no prediction
        replaces another."""
        taken = self.__dict__.setdefault('_output_names', {})
        parts = osp.splitext(osp.abspath(img_path))[0].split(os.sep)
        for depth in range(1, len(parts) + 1):
            name = '__'.join(parts[-depth:])
            if taken.get(name, img_path) == img_path:
                taken[name] = img_path
                return name
        return '__'.join(parts)

    def _write_prediction(self, data_sample: dict, pred_label) -> None:
        basename = self._output_name(data_sample['img_path'])
        png_filename = osp.abspath(
            osp.join(self.output_dir, f'{basename}.png'))
        output_mask = pred_label.cpu().numpy()
        # Same +1 as mmseg for reduce_zero_label datasets (e.g. ADE-150).
        if data_sample.get('reduce_zero_label', False):
            output_mask = output_mask + 1
        if output_mask.max(initial=0) > 255:
            output = Image.fromarray(output_mask.astype(np.uint16))
        else:
            output = Image.fromarray(output_mask.astype(np.uint8))
        output.save(png_filename)

    def _resolve(self, specs: Sequence[ClassSpec], arg: str) -> List[int]:
        return resolve_class_specs(self.dataset_meta['classes'], specs, arg)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Computes the metrics from the accumulated areas.

        Args:
            results (list): The ``(intersect, union, pred, label)`` areas of
                every image.

        Returns:
            dict[str, float]: ``aAcc``, ``mIoU``, ``mAcc`` (percent, two
            decimals, as mmseg), plus ``mIoU_seen``, ``mIoU_unseen``,
            ``hIoU`` with a split and ``mIoU_gt_present`` when asked.
        """
        logger: MMLogger = MMLogger.get_current_instance()
        if self.format_only:
            logger.info(f'results are saved to {osp.dirname(self.output_dir)}')
            return OrderedDict()
        results = tuple(zip(*results))
        assert len(results) == 4
        total_area_intersect = sum(results[0])
        total_area_union = sum(results[1])
        total_area_pred_label = sum(results[2])
        total_area_label = sum(results[3])
        ret_metrics = self.total_area_to_metrics(
            total_area_intersect, total_area_union, total_area_pred_label,
            total_area_label, self.metrics, self.nan_to_num, self.beta)

        metrics = OrderedDict()
        for key, value in ret_metrics.items():
            summary = np.round(np.nanmean(value) * 100, 2)
            metrics[key if key == 'aAcc' else 'm' + key] = summary

        if 'IoU' in ret_metrics:
            iou = ret_metrics['IoU']
            if self.report_gt_present:
                present = total_area_label.numpy() > 0
                metrics['mIoU_gt_present'] = self._mean(iou[present])
            if self.unseen_classes is not None:
                unseen = self._resolve(self.unseen_classes, 'unseen_classes')
                if self.seen_classes is None:
                    seen = [i for i in range(len(iou)) if i not in unseen]
                else:
                    seen = self._resolve(self.seen_classes, 'seen_classes')
                overlap = sorted(set(seen) & set(unseen))
                if overlap:
                    raise ValueError(
                        'OpenVocabIoUMetric: classes '
                        f'{overlap[:5]} are both seen and unseen.')
                seen_miou = self._nanmean(iou[seen])
                unseen_miou = self._nanmean(iou[unseen])
                metrics['mIoU_seen'] = np.round(seen_miou * 100, 2)
                metrics['mIoU_unseen'] = np.round(unseen_miou * 100, 2)
                metrics['hIoU'] = np.round(
                    harmonic_mean(seen_miou, unseen_miou) * 100, 2)

        self._log_class_table(ret_metrics, logger)
        return dict(metrics)

    @staticmethod
    def _nanmean(values: np.ndarray) -> float:
        if values.size == 0 or np.all(np.isnan(values)):
            return float('nan')
        return float(np.nanmean(values))

    def _mean(self, values: np.ndarray) -> float:
        return np.round(self._nanmean(values) * 100, 2)

    def _log_class_table(self, ret_metrics: dict, logger: MMLogger) -> None:
        """Prints one row per class (first synonym as the name)."""
        names = [c.split(',')[0].strip() for c in self.dataset_meta['classes']]
        table = PrettyTable()
        table.add_column('Class', names)
        for key, value in ret_metrics.items():
            if key != 'aAcc':
                table.add_column(key, np.round(value * 100, 2))
        print_log('per class results:', logger)
        print_log('\n' + table.get_string(), logger=logger)
