"""MMSeg's visualizer for open vocabularies: any class list, with a legend.

:class:`OpenVocabVisualizer` is ``SegLocalVisualizer`` (same overlay, same
backends, usable as ``visualizer=dict(type='OpenVocabVisualizer')`` in a
config) that takes its classes from a vocabulary, makes a palette for any
number of classes, and draws a legend of the classes present beside each
drawn label map.
"""
from typing import List, Optional, Sequence

import numpy as np
import torch

from mmovss.datasets.layout import generate_palette
from mmovss.vocab import Vocabulary

import mmcv
from mmengine.dist import master_only
from mmengine.structures import PixelData
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from .legend import LegendEntry, draw_legend, legend_entries

__all__ = ['OpenVocabVisualizer', 'vocabulary_palette']


def vocabulary_palette(num_classes: int) -> List[List[int]]:
    """A fixed RGB colour per class index (the same for any vocabulary size:
    class ``i`` keeps its colour when classes are appended)."""
    return generate_palette(num_classes)


@VISUALIZERS.register_module()
class OpenVocabVisualizer(SegLocalVisualizer):
    """Overlays label maps of any vocabulary and adds a legend.

    Args:
        with_legend (bool): Draw the legend of present classes to the right
            of each drawn label map. Defaults to True.
        alpha (float): Opacity of the colour mask. Defaults to 0.5.
        name (str): Instance name (mmengine's visualizer manager).
        classes (Sequence, optional): Class names (synonyms allowed).
        palette (Sequence, optional): RGB colour per class; made if absent.
        legend_font (str, optional): TTF / OTF / TTC file for the legend
            text (see :func:`~mmovss.visualization.legend.draw_legend`); by
            default DejaVu Sans, or an installed font with the glyphs DejaVu
            lacks (CJK).
        **kwargs: ``SegLocalVisualizer`` arguments (``vis_backends``,
            ``save_dir``, ...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 with_legend: bool = True,
                 alpha: float = 0.5,
                 classes: Optional[Sequence] = None,
                 palette: Optional[Sequence] = None,
                 legend_font: Optional[str] = None,
                 **kwargs):
        super().__init__(name=name, alpha=alpha, **kwargs)
        # (SegLocalVisualizer.__init__ passes classes and palette swapped)
        self.set_dataset_meta(classes, palette)
        self.with_legend = with_legend
        self.legend_font = legend_font
        self.last_legend: List[LegendEntry] = []

    def set_dataset_meta(self,
                         classes: Optional[Sequence] = None,
                         palette: Optional[Sequence] = None,
                         dataset_name: Optional[str] = None) -> None:
        """Classes (display names) and palette; a palette is made if absent.

        Class strings with comma-separated synonyms (METAINFO style) are
        shown by their first name.
        """
        if not classes:
            super().set_dataset_meta(None, palette, dataset_name)
            return
        names = [c.split(',')[0].strip() if isinstance(c, str) else str(c[0])
                 for c in classes]
        if not palette or len(palette) != len(names):
            palette = vocabulary_palette(len(names))
        self.dataset_meta = {'classes': names,
                             'palette': [list(p) for p in palette]}

    def set_vocabulary(self, vocabulary, palette: Optional[Sequence] = None
                       ) -> None:
        """Shows the classes of a vocabulary (list, file or Vocabulary)."""
        vocabulary = Vocabulary.build(vocabulary)
        self.set_dataset_meta(list(vocabulary.class_names), palette)

    def _draw_sem_seg(self, image: np.ndarray, sem_seg: PixelData,
                      classes: Optional[List], palette: Optional[List],
                      with_labels: Optional[bool] = True) -> np.ndarray:
        """mmseg's overlay, with the legend of present classes to its right.

        mmseg gets the labels as a NumPy array: it indexes its colour mask
        with ``labels[0] == label``, which a one-pixel tensor turns into the
        integer index 0 or 1 (numpy reads a 1-element tensor as an index),
        so a 1 x 1 image failed or was coloured wrongly.
        """
        labels = sem_seg.cpu().data
        if isinstance(labels, torch.Tensor):
            labels = labels.numpy()
        labels = np.asarray(labels)
        overlay = super()._draw_sem_seg(image, PixelData(data=labels), classes,
                                        palette, with_labels)
        if not self.with_legend:
            return overlay
        self.last_legend = legend_entries(labels[0], classes, palette)
        panel = draw_legend(self.last_legend, overlay.shape[0],
                            font=self.legend_font)
        canvas = np.full((panel.shape[0], overlay.shape[1], 3), 255,
                         dtype=np.uint8)
        canvas[:overlay.shape[0]] = overlay
        drawn = np.concatenate([canvas, panel], axis=1)
        self.set_image(drawn)
        return drawn

    def draw_prediction(self, image: np.ndarray, sem_seg,
                        with_labels: bool = False) -> np.ndarray:
        """The overlay (+ legend) of one label map on one RGB image.

        Args:
            image (np.ndarray): (H, W, 3) RGB uint8 image.
            sem_seg (np.ndarray | Tensor): (H, W) labels.
            with_labels (bool): Also write names on the regions (mmseg).

        Returns:
            np.ndarray: RGB drawing; the legend rows are in
            :attr:`last_legend`.
        """
        if isinstance(sem_seg, np.ndarray):
            sem_seg = torch.from_numpy(sem_seg)
        data = PixelData(data=sem_seg.reshape(1, *sem_seg.shape[-2:]))
        return self._draw_sem_seg(image, data, self.dataset_meta['classes'],
                                  self.dataset_meta['palette'], with_labels)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = False) -> None:
        """As ``SegLocalVisualizer.add_datasample`` (ground truth left,
        prediction right), each with its legend; panels of different heights
        are padded with white."""
        classes = self.dataset_meta['classes']
        palette = self.dataset_meta['palette']
        panels = []
        for key, wanted in (('gt_sem_seg', draw_gt),
                            ('pred_sem_seg', draw_pred)):
            if wanted and data_sample is not None and key in data_sample:
                panels.append(
                    self._draw_sem_seg(image, data_sample.get(key), classes,
                                       palette, with_labels))
        if not panels:
            panels = [image]
        height = max(p.shape[0] for p in panels)
        panels = [
            np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)),
                   constant_values=255) for p in panels
        ]
        drawn = np.concatenate(panels, axis=1)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)
