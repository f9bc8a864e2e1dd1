"""The OVShapes dataset (see :mod:`mmovss.ovshapes`)."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..ovshapes import world


@DATASETS.register_module()
class OVShapesDataset(BaseSegDataset):
    """OVShapes images and labels in the MMSeg layout.

    Args:
        ignore_unseen (bool): Map the labels of the unseen classes to
            ``ignore_index``, so that training sees only seen-class pixels
            (the open-vocabulary protocol). Keep it False for evaluation.
        **kwargs: :class:`mmseg.datasets.BaseSegDataset` arguments
            (``data_root``, ``data_prefix``, ``pipeline``, ...).
    """

    METAINFO = dict(classes=world.class_names(), palette=world.palette())

    def __init__(self, ignore_unseen: bool = False, img_suffix='.png', seg_map_suffix='.png',
                 **kwargs):
        self.ignore_unseen = ignore_unseen
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs)

    def get_label_map(self, new_classes=None):
        """The label map of mmseg, plus unseen classes -> ignore when asked.

        mmseg's ``LoadAnnotations`` applies ``label_map`` to every label file.
        """
        label_map = super().get_label_map(new_classes) or {}
        if self.ignore_unseen:
            names = list(world.class_names())
            for name in world.unseen_class_names():
                label_map[names.index(name)] = self.ignore_index
        return label_map or None
