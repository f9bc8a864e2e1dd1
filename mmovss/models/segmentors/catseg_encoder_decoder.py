"""CAT-Seg's segmentor: the released code's two evaluation protocols.

:class:`CATSegEncoderDecoder` is :class:`OpenVocabEncoderDecoder` (mmseg's
``'whole'`` and ``'slide'`` modes, logits) plus the protocols of
``CATSeg.forward`` / ``CATSeg.inference_sliding_window`` in
``cat_seg/cat_seg_model.py`` of github.com/KU-CVLAB/CAT-Seg, selected by
``test_cfg.mode``:

``'catseg_slide'`` (``TEST.SLIDING_WINDOW True``, every benchmark of the
paper, ``eval.sh``)
    1. The (unpadded) image is resized to ``resize_to`` = 640 x 640
       ignoring its aspect ratio (bilinear).
    2. ``crop_size`` = 384 windows are cut at ``stride`` = 256, as
       ``nn.Unfold`` places them (only windows that fit), plus one *global*
       view: the image resized to 384 x 384 (``global_view``).
    3. Each view's head logits (96 x 96) are resized to 384 x 384 and passed
       through a sigmoid; overlapping window probabilities are averaged
       (``nn.Fold`` sum / count) and the result is averaged with the global
       probabilities resized to 640 x 640.
    4. The 640 x 640 probabilities are resized to the original image size.

``'catseg_whole'`` (``TEST.SLIDING_WINDOW False``)
    The image, padded bottom/right with zeros (after normalisation) to a
    multiple of ``size_divisor`` = 32, is one view; the sigmoid of its head
    logits is cropped to ``[:h, :w]`` *in the logit grid* (the released
    code's ``sem_seg_postprocess`` is given the image size but a 96 x 96
    map) and resized to the original image size.

Both return probabilities, not logits; labels are their argmax, computed
``resize_class_chunk`` classes at a time. The head scores every *name*
(:meth:`ClassEmbeddings.names_as_classes`): the names of a class (synonyms,
PAS-20b's 39 background names) are reduced to the class (the text encoder's
``synonym_reduction``, max by default) only once the probabilities are at the
original size, where the released evaluator maps a prediction on a name to
its label (``VOCbEvaluator`` of ``train_net.py``: ``pred[pred >= 20] = 20``),
not per view (the mean of the views' maxima is not the maximum of their
mean). With more names than the head's
``pad_len`` (A-847, PC-459) the names it does not aggregate get the logit
-100 in every view, hence identical probability maps: for the labels only
the first of them is resized (:meth:`CATSegEncoderDecoder.resized_classes`;
the argmax keeps the earliest class of a tie, so the labels are unchanged).
"""
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import OptSampleList, SampleList

from ..text_encoders.class_embeddings import ClassEmbeddings, reduce_names
from ..utils.running_max import chunked_argmax
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['CATSegEncoderDecoder', 'CATSEG_TEST_MODES', 'unfold_starts']

#: ``test_cfg.mode`` values of the released CAT-Seg evaluation.
CATSEG_TEST_MODES = ('catseg_slide', 'catseg_whole')


def unfold_starts(size: int, kernel: int, stride: int) -> List[int]:
    """Window offsets along one side, as ``nn.Unfold`` places them.

    Raises:
        ValueError: The windows do not cover the side (the released code
            would divide by a zero count there).
    """
    if size < kernel:
        raise ValueError(f'CAT-Seg sliding window: the resized side {size} is smaller than '
                         f'the window {kernel}; set test_cfg.resize_to >= crop_size.')
    starts = list(range(0, size - kernel + 1, stride))
    if starts[-1] + kernel != size:
        raise ValueError(
            f'CAT-Seg sliding window: windows of {kernel} at stride {stride} do not cover '
            f'{size} pixels (the last ends at {starts[-1] + kernel}); choose test_cfg '
            f'resize_to, crop_size and stride with (resize_to - crop_size) % stride == 0 '
            f'(released: 640, 384, 256).')
    return starts


@MODELS.register_module()
class CATSegEncoderDecoder(OpenVocabEncoderDecoder):
    """:class:`OpenVocabEncoderDecoder` with CAT-Seg's evaluation protocols.

    ``test_cfg`` keys of the CAT-Seg modes (see the module docstring):
    ``mode`` (``'catseg_slide'`` / ``'catseg_whole'``), ``crop_size``
    (384, 384), ``stride`` (256, 256), ``resize_to`` (640, 640),
    ``global_view`` (True), ``size_divisor`` (32), ``crop_batch_size``
    (views per forward, 8), ``resize_class_chunk`` (16),
    ``skip_dropped_classes`` (True: resize only the first of the names the
    head did not aggregate, :meth:`resized_classes`, in a vocabulary
    without synonyms; the labels are the same) and ``return_logits`` (store
    the original-size probabilities as ``seg_logits``; every class is
    resized). Other modes behave as in the parent class.
    """

    # ---------------------------------------------------------- modes
    def _test_mode(self) -> str:
        mode = self.test_cfg.get('mode', 'whole')
        if mode in CATSEG_TEST_MODES:
            return mode
        return super()._test_mode()

    @property
    def catseg_mode(self) -> Optional[str]:
        """The CAT-Seg protocol in use, or None for mmseg's modes."""
        mode = self._test_mode()
        return mode if mode in CATSEG_TEST_MODES else None

    def _pair(self, key: str, default: Sequence[int]) -> Tuple[int, int]:
        value = self.test_cfg.get(key, default)
        if isinstance(value, int):
            value = (value, value)
        value = tuple(int(v) for v in value)
        if len(value) != 2 or min(value) < 1:
            raise ValueError(f'test_cfg.{key} must be a positive (H, W) pair, got {value}.')
        return value

    # ---------------------------------------------------------- views
    @staticmethod
    def unpadded(image: Tensor, meta: dict) -> Tensor:
        """The image (3, H, W) without the batch padding of its sample."""
        left, right, top, bottom = meta.get('img_padding_size',
                                            meta.get('padding_size', None)) or [0] * 4
        h, w = image.shape[-2:]
        return image[:, top:h - bottom, left:w - right]

    def views(self, image: Tensor) -> Tensor:
        """The network inputs (V, 3, h, w) of one unpadded image (3, H, W)."""
        if self.catseg_mode == 'catseg_whole':
            div = int(self.test_cfg.get('size_divisor', 32))
            h, w = image.shape[-2:]
            pad_h, pad_w = (-h) % div, (-w) % div
            return F.pad(image, (0, pad_w, 0, pad_h))[None]
        crop_h, crop_w = self._pair('crop_size', (384, 384))
        stride_h, stride_w = self._pair('stride', (256, 256))
        out_h, out_w = self._pair('resize_to', (640, 640))
        resized = F.interpolate(image[None], size=(out_h, out_w), mode='bilinear',
                                align_corners=False)
        views = [resized[:, :, y:y + crop_h, x:x + crop_w]
                 for y in unfold_starts(out_h, crop_h, stride_h)
                 for x in unfold_starts(out_w, crop_w, stride_w)]
        if self.test_cfg.get('global_view', True):
            views.append(F.interpolate(image[None], size=(crop_h, crop_w), mode='bilinear',
                                       align_corners=False))
        return torch.cat(views)

    def view_logits(self, views: Tensor, class_embeds: ClassEmbeddings) -> Tensor:
        """Head logits (V, N, h, w) of the views, one per *name* (not reduced
        over synonyms), ``crop_batch_size`` views at a time."""
        batch = int(self.test_cfg.get('crop_batch_size', 8))
        if batch < 1:
            raise ValueError(f'test_cfg.crop_batch_size must be >= 1, got {batch}.')
        names = self.head_class_embeds(class_embeds.names_as_classes())
        outs = []
        for s in range(0, views.shape[0], batch):
            feats = self.extract_feat(views[s:s + batch])  # casts the model on its first call
            outs.append(self.decode_head(feats, names).float())
        return torch.cat(outs)

    def probabilities(self, logits: Tensor, image_hw: Sequence[int]) -> Tensor:
        """Probabilities (c, gh, gw) of some classes from their view logits.

        Args:
            logits (Tensor): (V, c, h, w) head logits of :meth:`views`.
            image_hw (Sequence[int]): The unpadded image size (H, W).

        Returns:
            Tensor: ``'catseg_slide'``: at ``resize_to``; ``'catseg_whole'``:
            the sigmoid of the logits cropped to ``[:H, :W]``.
        """
        if self.catseg_mode == 'catseg_whole':
            return logits[0].sigmoid()[:, :image_hw[0], :image_hw[1]]
        crop_h, crop_w = self._pair('crop_size', (384, 384))
        stride_h, stride_w = self._pair('stride', (256, 256))
        out_h, out_w = self._pair('resize_to', (640, 640))
        probs = F.interpolate(logits, size=(crop_h, crop_w), mode='bilinear',
                              align_corners=False).sigmoid()
        total = probs.new_zeros((probs.shape[1], out_h, out_w))
        count = probs.new_zeros((1, out_h, out_w))
        boxes = [(y, x) for y in unfold_starts(out_h, crop_h, stride_h)
                 for x in unfold_starts(out_w, crop_w, stride_w)]
        for (y, x), p in zip(boxes, probs):
            total[:, y:y + crop_h, x:x + crop_w] += p
            count[:, y:y + crop_h, x:x + crop_w] += 1
        out = total / count
        if self.test_cfg.get('global_view', True):
            glob = F.interpolate(probs[-1:], size=(out_h, out_w), mode='bilinear',
                                 align_corners=False)[0]
            out = (out + glob) / 2
        return out

    def _class_chunks(self, num: int) -> List[Tuple[int, int]]:
        chunk = int(self.test_cfg.get('resize_class_chunk', 16))
        if chunk < 1:
            raise ValueError(f'test_cfg.resize_class_chunk must be >= 1, got {chunk}.')
        return [(s, min(s + chunk, num)) for s in range(0, num, chunk)]

    def _name_chunks(self, num_channels: int, class_embeds: Optional[ClassEmbeddings]
                     ) -> List[Tuple[int, int, int, int]]:
        """``(first class, end class, first name, end name)`` of each chunk:
        ``resize_class_chunk`` classes with all their names (a class's names
        are consecutive, :attr:`Vocabulary.names`)."""
        if class_embeds is None or not class_embeds.has_synonyms:
            return [(s, e, s, e) for s, e in self._class_chunks(num_channels)]
        counts = torch.bincount(class_embeds.name_to_class.cpu(),
                                minlength=class_embeds.num_classes)
        first = [0, *torch.cumsum(counts, 0).tolist()]
        return [(s, e, first[s], first[e])
                for s, e in self._class_chunks(class_embeds.num_classes)]

    def original_size_probabilities(self, logits: Tensor, meta: dict,
                                    image_hw: Sequence[int],
                                    class_embeds: Optional[ClassEmbeddings] = None
                                    ) -> Iterator[Tuple[int, Tensor]]:
        """``(first_class, probabilities)`` chunks resized to ``ori_shape``.

        The resize is bilinear (``align_corners=False``), as detectron2's
        ``sem_seg_postprocess``; a flip of the sample is undone after it.
        With ``class_embeds`` that have synonyms, ``logits`` has one channel
        per name and each class's names are reduced after the resize.
        """
        size = tuple(meta['ori_shape'][:2])
        flip = meta.get('flip', None)
        direction = meta.get('flip_direction', None)
        if flip and direction not in ('horizontal', 'vertical'):
            raise ValueError(f'Unknown flip_direction {direction!r}.')
        for start, end, first, last in self._name_chunks(logits.shape[1], class_embeds):
            probs = self.probabilities(logits[:, first:last], image_hw)
            probs = F.interpolate(probs[None], size=size, mode='bilinear',
                                  align_corners=False)[0]
            if flip:
                probs = probs.flip(2 if direction == 'horizontal' else 1)
            if last - first != end - start:
                probs = reduce_names(probs, class_embeds.name_to_class[first:last] - start,
                                     end - start, class_embeds.reduction, dim=0)
            yield start, probs

    #: The logit :class:`~mmovss.models.decode_heads.CATSegHead` gives the names
    #: it does not aggregate (``pad_len`` exceeded).
    dropped_logit = -100.0

    def resized_classes(self, logits: Tensor) -> Optional[Tensor]:
        """Classes whose probabilities the labels need, or None for all.

        Classes whose logits are :attr:`dropped_logit` everywhere in every
        view have identical probability maps at every step (each class is
        resized on its own); the argmax only needs the first of them, the
        others lose every tie to it.

        Args:
            logits (Tensor): (V, C, h, w) head logits of :meth:`views`.

        Returns:
            Tensor | None: Increasing class indices (int64), or None when
            fewer than two classes are such copies.
        """
        same = (logits == self.dropped_logit).flatten(2).all(dim=-1).all(dim=0)
        if int(same.sum()) < 2:
            return None
        keep = ~same
        keep[int(same.nonzero()[0, 0])] = True
        return keep.nonzero()[:, 0]

    # ---------------------------------------------------------- inference
    def chunked_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                          class_embeds: Optional[ClassEmbeddings] = None):
        if self.catseg_mode is not None:
            return None
        return super().chunked_inference(inputs, batch_img_metas, class_embeds)

    def inference(self, inputs: Tensor, batch_img_metas: List[dict],
                  class_embeds: Optional[ClassEmbeddings] = None) -> Tensor:
        """Probabilities at the input size in the CAT-Seg modes.

        Each image's probabilities are resized to its unpadded size and
        zero-padded like the input; mmseg's modes return logits as the
        parent class does.
        """
        if self.catseg_mode is None:
            return super().inference(inputs, batch_img_metas, class_embeds)
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        out = []
        for image, meta in zip(inputs, batch_img_metas):
            image = self.unpadded(image, meta)
            logits = self.view_logits(self.views(image), class_embeds)
            probs = self.probabilities(logits, image.shape[-2:])
            probs = F.interpolate(probs[None], size=image.shape[-2:], mode='bilinear',
                                  align_corners=False)[0]
            probs = class_embeds.reduce(probs, dim=0)  # names -> classes after the resize
            h, w = image.shape[-2:]
            full = probs.new_zeros((probs.shape[0], *inputs.shape[-2:]))
            left, _, top, _ = meta.get('img_padding_size',
                                       meta.get('padding_size', None)) or [0] * 4
            full[:, top:top + h, left:left + w] = probs
            out.append(full)
        return torch.stack(out)

    def predict(self, inputs: Tensor, data_samples: OptSampleList = None) -> SampleList:
        """Labels (and, with ``return_logits``, probabilities) per image.

        In the CAT-Seg modes the probabilities go from the protocol's grid
        straight to the original size, as in the released code.
        """
        if self.catseg_mode is None:
            return super().predict(inputs, data_samples)
        batch_img_metas = self.batch_img_metas(inputs, data_samples)
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(inputs.shape[0])]
        class_embeds = self.class_embeddings()
        return_logits = bool(self.test_cfg.get('return_logits', False))
        for image, meta, sample in zip(inputs, batch_img_metas, data_samples):
            image = self.unpadded(image, meta)
            logits = self.view_logits(self.views(image), class_embeds)
            select = None if return_logits or class_embeds.has_synonyms or not \
                self.test_cfg.get('skip_dropped_classes', True) else self.resized_classes(logits)
            if select is not None:
                logits = logits[:, select]
            chunks = self.original_size_probabilities(logits, meta, image.shape[-2:],
                                                      class_embeds)
            if return_logits:
                chunks = list(chunks)
            pred = chunked_argmax(iter(chunks))[1][None]
            if select is not None:
                pred = select[pred]
            fields = {'pred_sem_seg': PixelData(data=pred)}
            if return_logits:
                fields['seg_logits'] = PixelData(data=torch.cat([c for _, c in chunks]))
            sample.set_data(fields)
        return data_samples
