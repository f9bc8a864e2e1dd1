"""A sampler mixing the sub-datasets of a ``ConcatDataset`` by ratio.

OpenSeg trains on segmentation data and image-caption data at once
(Ghiasi et al., ECCV 2022, Sec. 4.1). With both in an mmengine
``ConcatDataset``, :class:`MixedSourceSampler` draws every index from
sub-dataset ``k`` with probability ``ratios[k] / sum(ratios)`` (each
sub-dataset walked through in its own shuffled order), indefinitely, as
mmengine's ``InfiniteSampler``; batches then mix both sources.
"""
import itertools
from typing import Iterator, Optional, Sequence

import torch
from torch.utils.data import Sampler

from mmengine.dist import get_dist_info, sync_random_seed
from mmseg.registry import DATA_SAMPLERS

__all__ = ['MixedSourceSampler']


@DATA_SAMPLERS.register_module()
class MixedSourceSampler(Sampler):
    """Infinite sampler drawing from the parts of a concatenated dataset.

    Args:
        dataset: An mmengine/torch ``ConcatDataset`` (``cumulative_sizes``).
        ratios (Sequence[float]): Relative frequency of each part.
        shuffle (bool): Walk each part in random order.
        seed (int, optional): Random seed (synchronised across ranks; each
            rank draws its own stream).
    """

    def __init__(self, dataset, ratios: Sequence[float],
                 shuffle: bool = True, seed: Optional[int] = None):
        sizes = getattr(dataset, 'cumulative_sizes', None)
        if sizes is None:
            raise TypeError(
                'MixedSourceSampler needs a ConcatDataset (dict(type='
                "'ConcatDataset', datasets=[...])), got "
                f'{type(dataset).__name__}.')
        if len(ratios) != len(sizes) or any(r < 0 for r in ratios) or \
                sum(ratios) <= 0:
            raise ValueError(
                f'MixedSourceSampler: give one non-negative ratio per part '
                f'({len(sizes)} parts), not all zero; got {list(ratios)}.')
        starts = [0] + list(sizes[:-1])
        self.parts = [(s, e - s) for s, e in zip(starts, sizes)]
        for k, (_, n) in enumerate(self.parts):
            if n == 0 and ratios[k] > 0:
                raise ValueError(f'MixedSourceSampler: part {k} is empty but '
                                 f'has ratio {ratios[k]}.')
        self.ratios = torch.tensor([float(r) for r in ratios])
        self.shuffle = shuffle
        self.rank, self.world_size = get_dist_info()
        self.seed = sync_random_seed() if seed is None else seed
        self.size = len(dataset)

    def _walk(self, part: int, gen: torch.Generator) -> Iterator[int]:
        start, n = self.parts[part]
        while True:
            order = torch.randperm(n, generator=gen) if self.shuffle \
                else torch.arange(n)
            for i in order.tolist():
                yield start + i

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(self.seed + self.rank)
        walks = [self._walk(k, gen) for k in range(len(self.parts))]
        for _ in itertools.count():
            part = int(torch.multinomial(self.ratios, 1, generator=gen))
            yield next(walks[part])

    def __len__(self) -> int:
        return self.size

    def set_epoch(self, epoch: int) -> None:
        """Unused (infinite sampler)."""
