"""A test-time scale that only shrinks: :class:`ResizeToMaxSide`.

mmcv's ``Resize(scale=..., keep_ratio=True)`` fits every image to the scale,
enlarging small ones too; a model trained on small images (OVShapes' 64 x 64
scenes) would then no longer be tested at its own size. ``ResizeToMaxSide``
leaves an image whose longer side is at most ``max_side`` untouched (the same
results as without it) and shrinks a larger one, aspect ratio kept, so that
its longer side is ``max_side``. Predictions are resized back to the
original image size by the segmentor (``ori_shape``), as after any
``Resize``.
"""
import mmcv
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

__all__ = ['ResizeToMaxSide']


@TRANSFORMS.register_module()
class ResizeToMaxSide(BaseTransform):
    """Shrinks an image whose longer side exceeds ``max_side``.

    Put it after ``LoadImageFromFile`` and before the annotation loader (as
    mmseg's test pipelines place ``Resize``): the label map then keeps the
    original size, at which predictions are scored. A label map loaded
    before it is shrunk with nearest-neighbour interpolation.

    Args:
        max_side (int): The longest image side the model is run at, in
            pixels (>= 1).
        interpolation (str): mmcv's interpolation for the image; ``'area'``
            (the default) averages the pixels a shrunk pixel covers.

    Sets ``img``, ``img_shape``, ``scale_factor`` (w, h) and
    ``keep_ratio`` when it shrinks; changes nothing otherwise.
    """

    def __init__(self, max_side: int, interpolation: str = 'area') -> None:
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
            raise ValueError(f'ResizeToMaxSide: max_side must be a whole number of pixels '
                             f'>= 1, got {max_side!r}.')
        self.max_side = max_side
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        img = results['img']
        h, w = img.shape[:2]
        if max(h, w) <= self.max_side:
            return results
        factor = self.max_side / max(h, w)
        size = (max(1, int(w * factor + 0.5)), max(1, int(h * factor + 0.5)))  # (w, h)
        results['img'] = mmcv.imresize(img, size, interpolation=self.interpolation,
                                       backend='cv2')
        results['img_shape'] = results['img'].shape[:2]
        results['scale_factor'] = (size[0] / w, size[1] / h)
        results['keep_ratio'] = True
        if results.get('gt_seg_map') is not None:
            results['gt_seg_map'] = mmcv.imresize(results['gt_seg_map'], size,
                                                  interpolation='nearest', backend='cv2')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(max_side={self.max_side}, '
                f'interpolation={self.interpolation!r})')
