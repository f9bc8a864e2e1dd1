"""The OVShapes dataset (see :mod:`mmovss.ovshapes`)."""
import os.path as osp
from typing import List

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

    def load_data_list(self) -> List[dict]:
        """Lists the samples; a missing or empty folder is a clear error.

        Every sample gets ``num_classes`` and ``ignore_index``, so that
        :class:`~mmovss.datasets.LoadSegAnnotations` checks its label values.
        """
        img_dir = self.data_prefix.get('img_path', '')
        ann_dir = self.data_prefix.get('seg_map_path', '')
        hint = ('Generate the dataset with `python tools/ovshapes/make_dataset.py --out '
                'data/ovshapes` or set data_root to your copy.')
        if self.backend_args is None:
            for what, folder in (('image folder', img_dir), ('label folder', ann_dir)):
                if folder and not osp.isdir(folder):
                    raise FileNotFoundError(
                        f'OVShapesDataset: {what} {folder} does not exist '
                        f'(data_root={self.data_root!r}). {hint}')
        data_list = super().load_data_list()
        if not data_list:
            raise FileNotFoundError(
                f'OVShapesDataset: no samples found in {img_dir} (suffix '
                f'{self.img_suffix!r}) with labels in {ann_dir}. {hint}')
        num_classes = len(self._metainfo['classes'])
        for info in data_list:
            info['num_classes'] = num_classes
            info['ignore_index'] = self.ignore_index
        return data_list
