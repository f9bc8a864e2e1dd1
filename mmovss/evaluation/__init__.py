"""Registered metrics (mmseg.registry.METRICS)."""
from .ov_iou_metric import OpenVocabIoUMetric, harmonic_mean  # noqa: F401

__all__ = ['OpenVocabIoUMetric', 'harmonic_mean']
