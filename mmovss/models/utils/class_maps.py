"""Per-class maps of one image, produced a chunk of classes at a time.

With large vocabularies (ADE-847, PC-459) the logits of all classes at the
network input size do not fit in memory comfortably: 847 classes at
640 x 853 are 1.85 GB in float32. The results do not need them at once:
every step between the head's low-resolution logits and the final labels is
either linear and per class (the bilinear resize of each window's logits to
the window, the sum and average over overlapping windows, the resize to the
original size) or reduces over classes in a way that can run over chunks
(argmax with a running maximum, an online softmax). :class:`ClassMaps` is
such a (C, H, W) array whose rows are computed on demand:
:meth:`SlideLogits.image_maps` gives, for a chunk of classes, the window
average of mmseg's sliding-window inference (the same operations in the same
order per class; equal up to float rounding, about 1e-6: the resize runs
vectorised over another number of channels, and on CPU small windows are
upsampled by two matrix products, :mod:`.separable_resize`), and
post-processing asks for ``class_chunk`` classes at a time. Peak memory
then scales with the chunk, not with the vocabulary.
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .separable_resize import resize_bilinear

__all__ = ['ClassMaps', 'SlideLogits']


class ClassMaps:
    """A (C, H, W) stack of per-class maps computed chunk by chunk.

    Args:
        num_channels (int): ``C``.
        hw (tuple[int, int]): ``(H, W)``.
        fn (callable): ``fn(start, end) -> Tensor (end - start, H, W)``.
        dtype (torch.dtype): dtype of the maps.
        device (torch.device): device of the maps.
    """

    def __init__(self, num_channels: int, hw: Tuple[int, int],
                 fn: Callable[[int, int], Tensor], dtype: torch.dtype,
                 device: torch.device):
        self.num_channels = int(num_channels)
        self.hw = (int(hw[0]), int(hw[1]))
        self._fn = fn
        self.dtype = dtype
        self.device = device

    @classmethod
    def from_tensor(cls, maps: Tensor) -> 'ClassMaps':
        """Wraps a dense (C, H, W) tensor (chunks are views)."""
        if maps.dim() != 3:
            raise ValueError(f'ClassMaps.from_tensor needs (C, H, W) maps, '
                             f'got {tuple(maps.shape)}.')
        out = cls(maps.shape[0], maps.shape[1:],
                  lambda s, e: maps[s:e], maps.dtype, maps.device)
        out.dense_tensor = maps
        return out

    dense_tensor: Optional[Tensor] = None

    @property
    def shape(self) -> Tuple[int, int, int]:
        return (self.num_channels, ) + self.hw

    def dim(self) -> int:
        return 3

    def chunk(self, start: int, end: int) -> Tensor:
        """Maps of channels ``start:end``, (end - start, H, W)."""
        start, end = max(0, start), min(end, self.num_channels)
        out = self._fn(start, end)
        if tuple(out.shape) != (end - start, ) + self.hw:
            raise RuntimeError(f'ClassMaps chunk {start}:{end} has shape '
                               f'{tuple(out.shape)}, expected '
                               f'{(end - start, ) + self.hw}.')
        return out

    def chunks(self, size: int):
        """``(start, maps)`` for consecutive chunks of ``size`` channels."""
        for start in range(0, self.num_channels, size):
            yield start, self.chunk(start, start + size)

    def dense(self) -> Tensor:
        """All maps as one (C, H, W) tensor (allocates it)."""
        if self.dense_tensor is not None:
            return self.dense_tensor
        return self.chunk(0, self.num_channels)

    def map(self, transform: Callable[[Tensor], Tensor],
            hw: Tuple[int, int]) -> 'ClassMaps':
        """Lazily applies a per-channel ``transform`` giving (n, *hw)."""
        if self.dense_tensor is not None:
            return ClassMaps.from_tensor(transform(self.dense_tensor))
        return ClassMaps(self.num_channels, hw,
                         lambda s, e: transform(self._fn(s, e)), self.dtype,
                         self.device)

    def crop(self, top: int, bottom: int, left: int,
             right: int) -> 'ClassMaps':
        """Removes ``top``/``bottom``/``left``/``right`` rows/columns."""
        if not (top or bottom or left or right):
            return self
        h, w = self.hw
        return self.map(lambda x: x[:, top:h - bottom, left:w - right],
                        (h - top - bottom, w - left - right))

    def flip(self, dim: int) -> 'ClassMaps':
        """Flips along ``dim`` (1: vertical, 2: horizontal)."""
        return self.map(lambda x: x.flip(dims=(dim, )), self.hw)


class SlideLogits:
    """Low-resolution window logits; their window average, class by class.

    Holds, for every window (crop) of a sliding-window inference (or the
    single window of ``'whole'`` inference), the head's logits *before* the
    resize to the window (e.g. (C, 14, 14) for a 224 window of a ViT-B/16),
    and computes mmseg's window average for any chunk of classes::

        L_c = (sum_w pad_w(resize(l_{w,c}, window size))) / count

    When the heads' logits are not low-resolution (together larger than the
    image, e.g. a head that upsamples to the window itself), keeping them
    would cost more than mmseg's dense canvas; then the windows are added to
    a dense (C, H, W) canvas as they come (mmseg's computation) and only the
    post-processing runs in chunks.

    Args:
        batch_size (int): Images.
        num_channels (int): Classes (or names) ``C``.
        image_hw (tuple[int, int]): The network input size.
        align_corners (bool): Of the head's resize.
        num_windows (int, optional): Windows per image (to choose between
            keeping them and a dense canvas); None: keep them.
        max_kept_ratio (float): Keep the windows while their pixels number
            at most this fraction of the image's.
    """

    def __init__(self, batch_size: int, num_channels: int,
                 image_hw: Tuple[int, int], align_corners: bool,
                 num_windows: Optional[int] = None,
                 max_kept_ratio: float = 1.0):
        self.batch_size = batch_size
        self.num_channels = num_channels
        self.image_hw = tuple(int(s) for s in image_hw)
        self.align_corners = align_corners
        self.num_windows = num_windows
        self.max_kept_ratio = float(max_kept_ratio)
        # per image: list of ((y1, y2, x1, x2), logits (C, h, w))
        self.windows: List[List[tuple]] = [[] for _ in range(batch_size)]
        # per image, in dense mode: [canvas (C, H, W), count (1, H, W)]
        self.canvases: List[Optional[list]] = [None] * batch_size
        self.dtype = None
        self.device = None

    def _keeps(self, logits: Tensor) -> bool:
        if self.num_windows is None:
            return True
        kept = self.num_windows * logits.shape[1] * logits.shape[2]
        return kept <= self.max_kept_ratio * self.image_hw[0] * \
            self.image_hw[1]

    def add(self, image: int, box: Sequence[int], logits: Tensor):
        """Adds one window's (C, h, w) low-resolution logits."""
        if logits.shape[0] != self.num_channels:
            raise ValueError(f'Window logits have {logits.shape[0]} channels, '
                             f'expected {self.num_channels}.')
        self.dtype, self.device = logits.dtype, logits.device
        box = tuple(int(v) for v in box)
        if not self.windows[image] and self.canvases[image] is None and \
                not self._keeps(logits):
            h, w = self.image_hw
            self.canvases[image] = [
                logits.new_zeros((self.num_channels, h, w)),
                logits.new_zeros((1, h, w))]
        if self.canvases[image] is None:
            self.windows[image].append((box, logits))
        else:
            self._accumulate(*self.canvases[image], box, logits)

    def _accumulate(self, canvas: Tensor, count: Tensor, box: tuple,
                    logits: Tensor) -> None:
        """Adds one window, resized to its box, to a canvas and its count."""
        y1, y2, x1, x2 = box
        canvas[:, y1:y2, x1:x2] += resize_bilinear(
            logits[None], (y2 - y1, x2 - x1), self.align_corners)[0]
        count[:, y1:y2, x1:x2] += 1

    def average(self, image: int, start: int, end: int) -> Tensor:
        """The window average of classes ``start:end``, (n, H, W).

        One window covering the image (``'whole'`` inference) is its resize,
        without a canvas or a count (the same values).
        """
        h, w = self.image_hw
        windows = self.windows[image]
        if self.canvases[image] is None and len(windows) == 1 and \
                windows[0][0] == (0, h, 0, w):
            return resize_bilinear(windows[0][1][None, start:end], (h, w),
                                   self.align_corners)[0]
        if self.canvases[image] is not None:
            canvas, count = self.canvases[image]
            canvas = canvas[start:end]
        else:
            canvas = torch.zeros((end - start, h, w), dtype=self.dtype,
                                 device=self.device)
            count = torch.zeros((1, h, w), dtype=self.dtype,
                                device=self.device)
            for box, logits in self.windows[image]:
                self._accumulate(canvas, count, box, logits[start:end])
        if not bool((count > 0).all()):
            raise RuntimeError('Sliding windows do not cover the image.')
        if self.canvases[image] is None:  # a fresh canvas: divide in place
            return canvas.div_(count)
        return canvas / count

    def image_maps(self, image: int) -> ClassMaps:
        """The (C, H, W) window average of one image, as :class:`ClassMaps`."""
        return ClassMaps(self.num_channels, self.image_hw,
                         lambda s, e: self.average(image, s, e), self.dtype,
                         self.device)

    def dense(self) -> Tensor:
        """(B, C, H, W): what ``slide_inference`` returns."""
        return torch.stack([self.average(b, 0, self.num_channels)
                            for b in range(self.batch_size)])
