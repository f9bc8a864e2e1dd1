"""Test-time augmentation (``tools/test.py --tta``) for open-vocabulary segmentors.

mmseg's ``SegTTAModel`` takes the softmax of every view's ``seg_logits``,
averages and takes the argmax; with one class it thresholds a sigmoid
(``decode_head.threshold``). The ``seg_logits`` of mmovss heads are logits,
class probabilities or non-negative class scores
(``OpenVocabDecodeHead.seg_logits_kind``), and a one-class vocabulary
labels every pixel with that class. :class:`OpenVocabTTAModel` averages
logits as probabilities (softmax, as mmseg) and probabilities and scores as
they are, and labels with the argmax for any number of classes.
"""
from typing import List

from mmengine.model import BaseTTAModel
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.utils import SampleList

__all__ = ['OpenVocabTTAModel']


@MODELS.register_module()
class OpenVocabTTAModel(BaseTTAModel):
    """Averages the views of an :class:`OpenVocabEncoderDecoder` (each view's
    ``seg_logits`` already resized to the image and flipped back by the
    segmentor) and labels every pixel with the argmax.

    Logits are averaged as probabilities (softmax over classes, as mmseg's
    ``SegTTAModel``); probabilities and scores are averaged as they are.
    The wrapped segmentor must keep ``seg_logits``
    (``test_cfg.return_logits=True``; ``tools/test.py --tta`` sets it) and
    label pixels by their argmax (:meth:`tta_unsupported_reason` is None).
    """

    def _kind(self) -> str:
        head = getattr(self.module, 'decode_head', None)
        return getattr(head, 'seg_logits_kind', 'logits')

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        kind = self._kind()
        predictions = []
        for views in data_samples_list:
            if any('seg_logits' not in view for view in views):
                raise RuntimeError(
                    'OpenVocabTTAModel: a view has no seg_logits; set '
                    'model.test_cfg.return_logits=True (tools/test.py --tta does).')
            total = None
            for view in views:
                scores = view.seg_logits.data.float()
                if kind == 'logits':
                    scores = scores.softmax(dim=0)
                total = scores if total is None else total + scores
            mean = total / len(views)
            merged = views[0]
            merged.set_data({'seg_logits': PixelData(data=mean),
                             'pred_sem_seg': PixelData(data=mean.argmax(dim=0, keepdim=True))})
            predictions.append(merged)
        return predictions
