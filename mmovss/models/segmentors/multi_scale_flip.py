"""Multi-scale + flip test-time evaluation of PyTorch-Encoding (LSeg's evaluator).

LSeg's published numbers (github.com/isl-org/lang-seg @ bb00b219, ``test_lseg.py``)
come from ``additional_utils/encoding_models.py: MultiEvalModule.forward`` (the same
loop as ``additional_utils/models.py: LSeg_MultiEvalModule.forward``, after
PyTorch-Encoding's ``MultiEvalModule``). For an input image of size ``(h, w)``,
already normalised, and each scale ``s`` of ``scales``:

1. ``long = ceil(base_size * s)``; the long side of the image is resized to
   ``long`` and the short side to ``int(short * long / long_side + 0.5)``
   (``h > w``: the height is the long side, else the width), by bilinear
   interpolation with ``align_corners=True`` of the normalised image;
2. sides shorter than the crop are padded (bottom / right) with
   ``-mean / std``, i.e. a black pixel (``pad_image``);
3. windows of ``crop_size`` start at multiples of ``stride``
   (``int(crop * 2 / 3)``), ``ceil((padded - crop) / stride) + 1`` per side; the
   last window is clipped at the border (not shifted back as in mmseg) and
   padded black to the crop size again; when the resized image fits in one crop
   this is the single padded crop of the official ``long_size <= crop_size``
   branch;
4. each window's logits are the network's logits plus the flipped logits of
   the flipped window (``module_inference``: a *sum*, not a mean), cropped back
   to the window; overlaps are averaged by their count; the result is cropped to
   the resized image;
5. the scale's logits are resized to ``(h, w)`` (bilinear, ``align_corners=True``)
   and *summed* over the scales.

This module makes it a test-time mode of any
:class:`~mmovss.models.segmentors.OpenVocabEncoderDecoder`:
:class:`MultiScaleFlipInference` (a mixin) reads
``test_cfg=dict(mode='multiscale_flip', base_size=520, scales=(0.5, 0.75, 1.0, 1.25,
1.5, 1.75), flip=True, crop_size=(480, 480), stride=(320, 320))``;
:class:`MultiScaleFlipEncoderDecoder` is the registered
``OpenVocabEncoderDecoder`` with it (same weights and keys). Other test modes
(``'whole'``, ``'slide'``) behave as in the base class. LSeg's ADE20K setting is
the default above; its Cityscapes setting is ``base_size=2048``, ``crop_size=768``,
``scales=(0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)``.

The network input of every forward is a full crop (``crop_size``), as in the
official loop; windows (and their flips) are batched ``crop_batch_size`` at a
time, which leaves the logits unchanged up to float rounding. The scores are
dense at the input size (classes x H x W), as in the official evaluator. Images
of a padded batch are evaluated on their own, unpadded region (the official
evaluator takes one image at a time).
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from .open_vocab_encoder_decoder import OpenVocabEncoderDecoder

__all__ = ['MULTISCALE_FLIP_MODE', 'MultiScaleFlipInference', 'MultiScaleFlipEncoderDecoder',
           'multiscale_flip_logits', 'official_scale_size', 'official_windows']

#: The ``test_cfg.mode`` of this evaluation.
MULTISCALE_FLIP_MODE = 'multiscale_flip'

_UP = dict(mode='bilinear', align_corners=True)  # PyTorch-Encoding's up_kwargs


def _pair(value, name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, Sequence) and len(value) == 2 and all(
            isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f'test_cfg.{name} must be an int or a pair of ints (height, width), got '
                     f'{value!r}.')


def official_scale_size(h: int, w: int, base_size: int, scale: float) -> Tuple[int, int]:
    """``(height, width)`` of one scale, as ``MultiEvalModule.forward`` computes it.

    The long side becomes ``ceil(base_size * scale)``, the short side
    ``int(short * long / long_side + 0.5)``; for a square image the width is the
    long side (the official ``else`` branch).
    """
    long_size = int(math.ceil(base_size * scale))
    if h > w:
        return long_size, int(1.0 * w * long_size / h + 0.5)
    return int(1.0 * h * long_size / w + 0.5), long_size


def official_windows(size: Tuple[int, int], crop: Tuple[int, int],
                     stride: Tuple[int, int]) -> List[Tuple[int, int, int, int]]:
    """The official windows ``(h0, h1, w0, w1)`` of a (padded) image.

    ``ceil((side - crop) / stride) + 1`` windows per side starting at multiples
    of ``stride``, clipped at the border (``MultiEvalModule.forward``).
    """
    ph, pw = size
    h_grids = int(math.ceil(1.0 * (ph - crop[0]) / stride[0])) + 1
    w_grids = int(math.ceil(1.0 * (pw - crop[1]) / stride[1])) + 1
    boxes = []
    for idh in range(h_grids):
        for idw in range(w_grids):
            h0, w0 = idh * stride[0], idw * stride[1]
            boxes.append((h0, min(h0 + crop[0], ph), w0, min(w0 + crop[1], pw)))
    return boxes


def _pad(img: Tensor, crop: Tuple[int, int], pad_value: Tensor) -> Tensor:
    """Pads bottom / right to at least ``crop`` with a per-channel value (``pad_image``)."""
    _, c, h, w = img.shape
    padh, padw = max(crop[0] - h, 0), max(crop[1] - w, 0)
    if not padh and not padw:
        return img
    out = pad_value.view(1, c, 1, 1).to(img).expand(img.shape[0], c, h + padh, w + padw)
    out = out.clone()
    out[:, :, :h, :w] = img
    return out


def multiscale_flip_logits(forward: Callable[[Tensor], Tensor], image: Tensor,
                           base_size: int, scales: Sequence[float],
                           crop_size: Tuple[int, int], stride: Tuple[int, int],
                           pad_value: Tensor, flip: bool = True,
                           batch_size: int = 8) -> Tensor:
    """Multi-scale + flip logits of one image (module docstring, steps 1-5).

    Args:
        forward (Callable): ``(N, 3, ch, cw) -> (N, C, ch, cw)`` logits of a
            batch of full crops.
        image (Tensor): (1, 3, h, w) normalised image.
        base_size (int): Long side at scale 1 (LSeg: 520).
        scales (Sequence[float]): Scales of ``base_size``.
        crop_size (tuple): Window (height, width) (LSeg: 480 x 480).
        stride (tuple): Window stride (LSeg: 320 = int(480 * 2 / 3)).
        pad_value (Tensor): (3,) normalised value of the padding (black).
        flip (bool): Add the flipped logits of the flipped window.
        batch_size (int): Crops per forward (flips included).

    Returns:
        Tensor: (1, C, h, w) float32 logits summed over the scales.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f'multiscale_flip_logits takes one image (1, 3, h, w), got '
                         f'{tuple(image.shape)}.')
    if not scales:
        raise ValueError('test_cfg.scales is empty: give at least one scale (LSeg: '
                         '(0.5, 0.75, 1.0, 1.25, 1.5, 1.75)).')
    _, _, h, w = image.shape
    scores = None
    for scale in scales:
        height, width = official_scale_size(h, w, base_size, scale)
        cur = F.interpolate(image, (height, width), **_UP)
        padded = _pad(cur, crop_size, pad_value)
        ph, pw = padded.shape[2:]
        boxes = official_windows((ph, pw), crop_size, stride)
        crops = torch.cat([_pad(padded[:, :, h0:h1, w0:w1], crop_size, pad_value)
                           for h0, h1, w0, w1 in boxes])
        n = crops.shape[0]
        if flip:
            crops = torch.cat([crops, crops.flip(3)])
        logits = torch.cat([forward(crops[i:i + batch_size]).float()
                            for i in range(0, crops.shape[0], batch_size)])
        if flip:
            logits = logits[:n] + logits[n:].flip(3)
        outputs = logits.new_zeros((1, logits.shape[1], ph, pw))
        count = logits.new_zeros((1, 1, ph, pw))
        for (h0, h1, w0, w1), out in zip(boxes, logits):
            outputs[0, :, h0:h1, w0:w1] += out[:, :h1 - h0, :w1 - w0]
            count[:, :, h0:h1, w0:w1] += 1
        outputs = (outputs / count)[:, :, :height, :width]
        score = F.interpolate(outputs, (h, w), **_UP)
        scores = score if scores is None else scores + score
    return scores


class MultiScaleFlipInference:
    """Adds ``test_cfg.mode='multiscale_flip'`` to an ``OpenVocabEncoderDecoder``.

    ``test_cfg`` keys of the mode: ``base_size`` (int), ``scales`` (floats),
    ``flip`` (bool, default True), ``crop_size`` and ``stride`` (int or
    (h, w)), ``pad_pixel`` (the pixel value, before normalisation, of the
    padding; default 0 = black, the official ``-mean / std``), and
    ``crop_batch_size`` (crops per forward, default 8).
    """

    def _test_mode(self) -> str:
        if self.test_cfg.get('mode', 'whole') == MULTISCALE_FLIP_MODE:
            return MULTISCALE_FLIP_MODE
        try:
            return super()._test_mode()
        except ValueError:
            raise ValueError(
                f"test_cfg.mode must be 'slide', 'whole' or '{MULTISCALE_FLIP_MODE}', got "
                f"{self.test_cfg.get('mode')!r}.") from None

    def _multiscale_settings(self) -> dict:
        cfg = self.test_cfg
        missing = [k for k in ('base_size', 'scales', 'crop_size', 'stride') if k not in cfg]
        if missing:
            raise ValueError(
                f"test_cfg.mode='{MULTISCALE_FLIP_MODE}' needs test_cfg.{', '.join(missing)}"
                f' (LSeg: base_size=520, scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75), '
                f'crop_size=(480, 480), stride=(320, 320)).')
        batch = int(cfg.get('crop_batch_size', 8))
        if batch < 1:
            raise ValueError(f'test_cfg.crop_batch_size must be >= 1, got {batch}.')
        stride = _pair(cfg['stride'], 'stride')
        if min(stride) < 1:
            raise ValueError(f'test_cfg.stride must be >= 1, got {cfg["stride"]!r}.')
        return dict(base_size=int(cfg['base_size']),
                    scales=tuple(float(s) for s in cfg['scales']),
                    crop_size=_pair(cfg['crop_size'], 'crop_size'), stride=stride,
                    flip=bool(cfg.get('flip', True)), batch_size=batch)

    def _pad_value(self, channels: int, ref: Tensor) -> Tensor:
        """The normalised value of ``test_cfg.pad_pixel`` per channel."""
        pixel = torch.full((channels,), float(self.test_cfg.get('pad_pixel', 0.0)),
                           dtype=torch.float32, device=ref.device)
        prep = self.data_preprocessor
        if getattr(prep, '_enable_normalize', False):
            mean = prep.mean.reshape(-1).to(pixel)
            std = prep.std.reshape(-1).to(pixel)
            pixel = (pixel - mean) / std
        return pixel.to(ref.dtype)

    def multiscale_flip_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                                  class_embeds: Optional[ClassEmbeddings] = None
                                  ) -> Tensor:
        """Logits (B, C, H, W) at the input size, summed over scales and flips."""
        settings = self._multiscale_settings()
        if class_embeds is None:
            class_embeds = self.class_embeddings()
        crop = settings['crop_size']
        pad_value = self._pad_value(inputs.shape[1], inputs)

        def forward(crops: Tensor) -> Tensor:
            metas = [dict(batch_img_metas[0], img_shape=crop, pad_shape=crop,
                          padding_size=[0, 0, 0, 0])] * crops.shape[0]
            return self.encode_decode(crops, metas, class_embeds)

        out = None
        for b, meta in enumerate(batch_img_metas):
            h, w = meta.get('img_shape', inputs.shape[2:])[:2]
            logits = multiscale_flip_logits(
                forward, inputs[b:b + 1, :, :h, :w], settings['base_size'],
                settings['scales'], crop, settings['stride'], pad_value,
                flip=settings['flip'], batch_size=settings['batch_size'])
            if out is None:
                out = logits.new_zeros((inputs.shape[0], logits.shape[1], *inputs.shape[2:]))
            out[b, :, :h, :w] = logits[0]
        return out

    def inference(self, inputs: Tensor, batch_img_metas: List[dict],
                  class_embeds: Optional[ClassEmbeddings] = None) -> Tensor:
        if self._test_mode() == MULTISCALE_FLIP_MODE:
            return self.multiscale_flip_inference(inputs, batch_img_metas, class_embeds)
        return super().inference(inputs, batch_img_metas, class_embeds)

    def chunked_inference(self, inputs: Tensor, batch_img_metas: List[dict],
                          class_embeds: Optional[ClassEmbeddings] = None):
        if self._test_mode() == MULTISCALE_FLIP_MODE:
            return None  # dense scores: predict() then takes inference()
        return super().chunked_inference(inputs, batch_img_metas, class_embeds)


@MODELS.register_module()
class MultiScaleFlipEncoderDecoder(MultiScaleFlipInference, OpenVocabEncoderDecoder):
    """:class:`OpenVocabEncoderDecoder` with the ``'multiscale_flip'`` test mode.

    Same arguments, weights and state-dict keys as
    :class:`OpenVocabEncoderDecoder`; ``test_cfg`` as in
    :class:`MultiScaleFlipInference` (LSeg's official evaluation,
    ``additional_utils/encoding_models.py: MultiEvalModule``).
    """
