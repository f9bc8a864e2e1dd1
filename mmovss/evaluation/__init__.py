"""Registered metrics (mmseg.registry.METRICS)."""
from .ov_iou_metric import (
    OpenVocabIoUMetric,
    harmonic_mean,
    resolve_class_specs,
    unseen_class_indices,
)

__all__ = ['OpenVocabIoUMetric', 'harmonic_mean', 'resolve_class_specs',
           'unseen_class_indices']
