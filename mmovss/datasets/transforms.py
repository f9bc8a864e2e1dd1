"""Label-map loading that keeps class indices above 255 and checks values.

mmseg's :class:`~mmseg.datasets.transforms.LoadAnnotations` casts every label
map to ``uint8``. That is right for benchmarks with at most 255 classes and
ignore index 255, and silently wrong for ADE20K-full (847 classes) and PASCAL
Context full (459 classes), whose labels are stored in 16-bit PNG/TIFF files
with ignore index 65535. :class:`LoadSegAnnotations` keeps mmseg's ``uint8``
result for the narrow case and returns ``uint16`` maps otherwise. mmseg's
geometric transforms (``Resize``/``RandomResize`` with nearest interpolation,
``RandomFlip``, ``RandomCrop`` with ``ignore_index`` set) and
``PackSegInputs`` (which casts to ``int64``) keep ``uint16`` values intact.
"""
from typing import Optional

import numpy as np

import mmcv
from mmengine import fileio
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import TRANSFORMS

__all__ = ['LoadSegAnnotations']

_UINT8_IGNORE = 255
_MAX_UINT16 = 65535


@TRANSFORMS.register_module()
class LoadSegAnnotations(LoadAnnotations):
    """Loads an 8- or 16-bit label map and checks its values.

    Works as mmseg's ``LoadAnnotations`` (same ``reduce_zero_label`` and
    ``label_map`` handling, same ``uint8`` output) for datasets with at most
    255 classes and ignore index 255. When the dataset has more than 255
    classes or an ignore index above 255, the map is returned as ``uint16``;
    ``reduce_zero_label`` then maps 0 to the ignore index and shifts the other
    values down by one without wrapping.

    The dataset's number of classes and ignore index are read from the keys
    ``num_classes`` and ``ignore_index`` of the sample (the benchmark datasets
    of :mod:`mmovss.datasets` put them there). When ``num_classes`` is known,
    a value that is neither a class index nor the ignore index raises an error
    that names the file and the value. Every dataset of mmovss, OVShapes
    included, uses this loader.

    Args:
        check_values (bool): Raise on out-of-range label values (the
            message names the file and the values as stored in it).
            Defaults to True.
        check_shape (bool): Raise when the label map's size differs from
            its image's (``ori_shape``, set by ``LoadImageFromFile`` earlier
            in the pipeline). Defaults to True.
        reduce_zero_label (bool, optional): See mmseg's ``LoadAnnotations``;
            None takes the dataset's setting. Defaults to None.
        backend_args (dict, optional): File backend arguments.
        imdecode_backend (str): Decoding backend. ``'pillow'`` (mmseg's
            default) reads palette PNGs as indices and 16-bit PNG/TIFF as
            ``uint16``. Defaults to ``'pillow'``.
    """

    def __init__(self,
                 check_values: bool = True,
                 check_shape: bool = True,
                 reduce_zero_label: Optional[bool] = None,
                 backend_args: Optional[dict] = None,
                 imdecode_backend: str = 'pillow') -> None:
        super().__init__(
            reduce_zero_label=reduce_zero_label,
            backend_args=backend_args,
            imdecode_backend=imdecode_backend)
        self.check_values = check_values
        self.check_shape = check_shape

    def _load_seg_map(self, results: dict) -> None:
        """Loads ``results['seg_map_path']`` into ``results['gt_seg_map']``."""
        path = results['seg_map_path']
        img_bytes = fileio.get(path, backend_args=self.backend_args)
        raw = mmcv.imfrombytes(
            img_bytes, flag='unchanged',
            backend=self.imdecode_backend).squeeze()
        if raw.ndim != 2:
            raise ValueError(
                f'Label file {path} has shape {raw.shape}; a label file must '
                'be a single-channel map of class indices (not a colour '
                'visualisation). Prepare the labels with the converters in '
                'tools/dataset_converters/ (see docs/dataset_prepare.md).')
        if raw.dtype.kind not in 'ui':
            raise ValueError(
                f'Label file {path} holds {raw.dtype} values; class indices '
                'must be integers.')

        num_classes = results.get('num_classes')
        ignore_index = int(results.get('ignore_index', _UINT8_IGNORE))
        wide = ignore_index > _UINT8_IGNORE or (num_classes or 0) > 255
        if ignore_index < 0 or ignore_index > _MAX_UINT16:
            raise ValueError(
                f'ignore_index={ignore_index} cannot be stored in a label '
                'map; use a value in [0, 65535] (255 or 65535).')

        if self.reduce_zero_label is None:
            self.reduce_zero_label = results['reduce_zero_label']
        assert self.reduce_zero_label == results['reduce_zero_label'], \
            'Initialize dataset with `reduce_zero_label` as ' \
            f'{results["reduce_zero_label"]} but when load annotation ' \
            f'the `reduce_zero_label` is {self.reduce_zero_label}'

        if not wide:
            if raw.min() < 0 or raw.max() > 255:
                raise ValueError(
                    f'Label file {path} holds value {int(raw.max())} (or '
                    f'{int(raw.min())}), which does not fit the 8-bit labels '
                    'of this dataset (at most 255 classes, ignore index 255). '
                    'Use a dataset with more classes and ignore_index=65535 '
                    'for 16-bit labels, or check the label files.')
            # Identical to mmseg's LoadAnnotations from here on.
            seg = raw.astype(np.uint8)
            if self.reduce_zero_label:
                seg[seg == 0] = 255
                seg = seg - 1
                seg[seg == 254] = 255
            seg = self._apply_label_map(seg, results.get('label_map'))
        else:
            if raw.min() < 0 or raw.max() > _MAX_UINT16:
                raise ValueError(
                    f'Label file {path} holds value {int(raw.max())} (or '
                    f'{int(raw.min())}) outside the 16-bit range [0, 65535].')
            seg = raw.astype(np.int64)
            if self.reduce_zero_label:
                shifted = seg - 1
                shifted[seg == 0] = ignore_index
                shifted[seg == ignore_index] = ignore_index
                seg = shifted
            seg = self._apply_label_map(seg, results.get('label_map'))
            seg = seg.astype(np.uint16)

        if self.check_values and num_classes is not None:
            values = np.unique(seg)
            bad = values[(values >= num_classes) & (values != ignore_index)]
            if bad.size:
                # Name the values as stored in the file (before the zero
                # label shift and the label map), as a user sees them.
                stored = np.unique(raw[np.isin(seg, bad)])
                raise ValueError(
                    f'Label file {path} holds value(s) '
                    f'{stored[:5].tolist()} but the dataset has {num_classes} '
                    f'classes (valid: 0..{num_classes - 1}, ignore '
                    f'{ignore_index}). Check the dataset layout and '
                    '`reduce_zero_label`, or convert the labels with '
                    'tools/dataset_converters/ (see docs/dataset_prepare.md).')

        if self.check_shape:
            self._check_shape(seg, results)
        results['gt_seg_map'] = seg
        results['seg_fields'].append('gt_seg_map')

    @staticmethod
    def _check_shape(seg: np.ndarray, results: dict) -> None:
        """The label map must have the size of its image (when loaded first).

        mmseg would otherwise train on misaligned pairs at batch size 1 and
        fail without a file name when a batch is stacked or scored.
        """
        shape = results.get('ori_shape')
        if shape is None or tuple(shape[:2]) == seg.shape[:2]:
            return
        raise ValueError(
            f"Label file {results['seg_map_path']} is {seg.shape[1]}x{seg.shape[0]} "
            f'(width x height) but its image {results.get("img_path")} is '
            f'{shape[1]}x{shape[0]}: every label map must have the size of its image. '
            'Re-create the label (or resize it with nearest-neighbour interpolation), or '
            'remove the pair from the dataset.')

    @staticmethod
    def _apply_label_map(seg: np.ndarray,
                         label_map: Optional[dict]) -> np.ndarray:
        """Replaces old label values by new ones, as mmseg does."""
        if label_map is None:
            return seg
        original = seg.copy()
        for old_id, new_id in label_map.items():
            seg[original == old_id] = new_id
        return seg

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'check_values={self.check_values}, '
                f'check_shape={self.check_shape}, '
                f'reduce_zero_label={self.reduce_zero_label}, '
                f"imdecode_backend='{self.imdecode_backend}', "
                f'backend_args={self.backend_args})')
