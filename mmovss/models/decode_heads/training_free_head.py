"""Scoring and post-processing shared by training-free CLIP segmentation.

SCLIP, NACLIP, ClearCLIP, MaskCLIP (as re-run by those codes) and ProxyCLIP
all score dense CLIP embeddings against name embeddings and post-process
the same way (SCLIP, Wang et al., ECCV 2024, Sec. 4.1 and its code, which
the others follow):

1. ``s_n(p) = <f(p)/|f(p)|, t_n>`` per name ``n`` (all synonyms of all
   classes), bilinearly resized to the crop (sliding windows are averaged by
   the segmentor), then to the original image size;
2. optional PAMR refinement of ``s`` (NACLIP, SCLIP);
3. ``P_n = softmax_n(tau * s_n)`` over *all* names, ``tau`` = the method's
   fixed logit scale (not CLIP's);
4. class probability ``P_c = max_{n in c} P_n`` (synonym merge);
5. optional area threshold (SCLIP): ``a_c`` = pixels whose argmax is ``c``;
   every non-background class with ``a_c <= area_thd * sum a`` gets
   ``P_c = 0``;
6. label = ``argmax_c P_c``; pixels with ``max_c P_c < prob_thd`` get the
   background class.

Optionally (``mask_refinement``, default off), a vote within class-agnostic
masks (:class:`~mmovss.models.mask_generators.MaskVoteRefinement`): the
region mean of ``s_n`` after step 2, or the regions' majority label after
step 6.

Steps 2-6 are per pixel after a resize that does not commute with the
softmax, so they run at the original size. :meth:`TrainingFreeHead.
predict_labels` does them in chunks of whole classes
(:class:`ChunkedClassProbs`) with an online softmax (a running
log-sum-exp), keeping only a few (H, W) maps besides one chunk, and keeps
the chunks' full-size logits for the second pass as far as they fit in
``cache_elements``; the others are recomputed (the results are the same).
The similarities themselves may come chunk by chunk
(:class:`~mmovss.models.utils.class_maps.ClassMaps`, computed from the
windows' low-resolution similarities), so with 847 names no full-size map of
all names exists at any resolution.
"""
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmseg.models.utils import resize
from mmseg.registry import MODELS

from ..text_encoders.class_embeddings import ClassEmbeddings
from ..utils.class_maps import ClassMaps
from ..utils.running_max import chunked_argmax
from .open_vocab_head import OpenVocabDecodeHead

__all__ = ['TrainingFreeHead', 'ChunkedClassProbs']


@MODELS.register_module()
class TrainingFreeHead(OpenVocabDecodeHead):
    """Cosine scoring of dense CLIP embeddings + the shared post-processing.

    :meth:`forward` gives class logits (``tau * s`` reduced over synonyms)
    as every :class:`OpenVocabDecodeHead`; :meth:`predict` gives the
    unscaled per-*name* similarities ``s`` at the input (crop) size, which
    :class:`~mmovss.models.segmentors.TrainingFreeSegmentor` averages over
    windows and hands to :meth:`predict_labels`.

    Args:
        in_channels (int): CLIP's joint embedding dimension.
        logit_scale (float): The temperature ``tau`` of step 3.
        prob_thd (float): Probability threshold of step 6 (0: off).
        area_thd (float, optional): Area fraction of step 5 (None: off).
        background_index (int, optional): The background class of the
            vocabulary (0 in the benchmark files with background); None for
            vocabularies without one (then ``prob_thd`` must be 0).
        pamr (dict, optional): A :class:`~mmovss.models.utils.PAMR` config
            (``dict(type='PAMR', num_iter=10, dilations=(8, 16))``).
        class_chunk (int): Classes post-processed at once.
        cache_elements (int): Keep full-size logits between passes, chunk
            by chunk, up to this many elements in all (default 2**27, 512 MB
            in float32); the other chunks are recomputed.
        in_index (int): Backbone output used (-1: the dense embeddings).
        mask_refinement (dict, optional): A mask-guided refinement config,
            e.g. ``dict(type='MaskVoteRefinement', mode='majority',
            generator=dict(type='FileMaskGenerator', mask_dir=...))``;
            None (default): no refinement.
        labels_without_softmax (bool): Without ``prob_thd``, ``area_thd``,
            mask refinement and returned probabilities, take the labels as
            ``argmax_c max_{n in c} s_n`` at the original size, skipping the
            softmax's normaliser pass (labels equal; default False).
    """

    seg_logits_kind = 'probabilities'  # what TrainingFreeSegmentor returns
    declares_widths = False  # scores the dense embeddings as they are

    def __init__(self,
                 in_channels: int,
                 logit_scale: float = 40.0,
                 prob_thd: float = 0.0,
                 area_thd: Optional[float] = None,
                 background_index: Optional[int] = 0,
                 pamr: Optional[dict] = None,
                 class_chunk: int = 32,
                 cache_elements: int = 2**27,
                 in_index: int = -1,
                 mask_refinement: Optional[dict] = None,
                 labels_without_softmax: bool = False,
                 **kwargs):
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(in_channels, in_channels, in_index=in_index,
                         **kwargs)
        if not logit_scale > 0:
            raise ValueError(f'logit_scale must be > 0, got {logit_scale}.')
        if not 0 <= prob_thd <= 1:
            raise ValueError(f'prob_thd must be in [0, 1], got {prob_thd}.')
        if prob_thd > 0 and background_index is None:
            raise ValueError(
                f'prob_thd={prob_thd} sends pixels to the background class, '
                f'but background_index is None; set background_index (0 for '
                f'the benchmark vocabularies with background) or prob_thd=0.')
        if area_thd is not None and not 0 <= area_thd < 1:
            raise ValueError(f'area_thd must be in [0, 1) or None, got '
                             f'{area_thd}.')
        if class_chunk < 1:
            raise ValueError(f'class_chunk must be >= 1, got {class_chunk}.')
        self.logit_scale = float(logit_scale)
        self.prob_thd = float(prob_thd)
        self.area_thd = area_thd
        self.background_index = background_index
        self.pamr = MODELS.build(pamr) if pamr else None
        self.class_chunk = int(class_chunk)
        self.cache_elements = int(cache_elements)
        self.mask_refinement = MODELS.build(mask_refinement) \
            if mask_refinement else None
        self.labels_without_softmax = bool(labels_without_softmax)

    # ------------------------------------------------------------ scoring
    def name_similarities(self, inputs: Tuple[Tensor],
                          class_embeds: ClassEmbeddings) -> Tensor:
        """Cosine similarities ``s_n`` (B, num_names, h, w)."""
        feats = self._transform_inputs(inputs)
        if feats.shape[1] != class_embeds.embeds.shape[1]:
            raise ValueError(
                f'TrainingFreeHead: features have {feats.shape[1]} channels '
                f'but class embeddings have {class_embeds.embeds.shape[1]}; '
                f'the backbone and text encoder must be the same CLIP.')
        feats = F.normalize(feats, dim=1)
        return torch.einsum('bchw,nc->bnhw', feats,
                            class_embeds.embeds.to(feats))

    def forward(self, inputs: Tuple[Tensor],
                class_embeds: ClassEmbeddings) -> Tensor:
        """Class logits ``max_{n in c} tau * s_n`` (B, num_classes, h, w)."""
        logits = self.name_similarities(inputs, class_embeds)
        return class_embeds.reduce(logits * self.logit_scale, dim=1)

    def predict(self, inputs: Tuple[Tensor], class_embeds: ClassEmbeddings,
                batch_img_metas: List[dict], test_cfg) -> Tensor:
        """Per-name similarities ``s_n``, resized to the input (crop) size."""
        sims = self.name_similarities(inputs, class_embeds)
        return self.predict_by_feat(sims, batch_img_metas)

    def predict_low_res(self, inputs: Tuple[Tensor],
                        class_embeds: ClassEmbeddings,
                        batch_img_metas: List[dict], test_cfg) -> Tensor:
        """``s_n`` at the feature resolution (:meth:`predict` unresized)."""
        return self.name_similarities(inputs, class_embeds)

    def loss(self, *args, **kwargs):
        raise NotImplementedError(
            'TrainingFreeHead has nothing to train; evaluate it with '
            'tools/test.py.')

    # ---------------------------------------------------- post-processing
    @staticmethod
    def _class_chunks(name_to_class: Sequence[int], num_classes: int,
                      chunk: int) -> List[Tuple[int, int, List[int]]]:
        """``(first_class, end_class, name_bounds)`` per chunk of classes.

        Names are ordered class by class (:attr:`Vocabulary.names`);
        ``name_bounds[i]`` is the first name of class ``first_class + i``,
        and the last entry the chunk's end.
        """
        starts = [0] * (num_classes + 1)
        counts = torch.bincount(torch.as_tensor(name_to_class),
                                minlength=num_classes).tolist()
        for c in range(num_classes):
            starts[c + 1] = starts[c] + counts[c]
        return [(c0, min(c0 + chunk, num_classes),
                 starts[c0:min(c0 + chunk, num_classes) + 1])
                for c0 in range(0, num_classes, chunk)]

    def _check_order(self, class_embeds: ClassEmbeddings):
        index = class_embeds.name_to_class.cpu()
        if index.numel() > 1 and bool((index[1:] < index[:-1]).any()):
            raise ValueError('TrainingFreeHead: names must be ordered class by '
                             'class (as Vocabulary.names is).')

    def _check_similarities(self, sims, class_embeds: ClassEmbeddings):
        """Checks ``sims`` against the vocabulary; returns them as
        :class:`ClassMaps`."""
        num_names = class_embeds.num_names
        num_classes = class_embeds.num_classes
        if sims.dim() != 3 or sims.shape[0] != num_names:
            raise ValueError(
                f'predict_labels: sims of shape {tuple(sims.shape)} do not '
                f'have one map per name ({num_names}).')
        if self.background_index is not None and \
                not 0 <= self.background_index < num_classes:
            raise ValueError(
                f'background_index={self.background_index} is outside the '
                f'{num_classes} classes of the vocabulary.')
        self._check_order(class_embeds)
        return ClassMaps.from_tensor(sims) if torch.is_tensor(sims) else sims

    def _pamr_refiner(self, image: Optional[Tensor], size: Tuple[int, int],
                      like: ClassMaps) -> Optional[Callable[[Tensor], Tensor]]:
        """PAMR of (1, n, H, W) similarity chunks, guided by the input image
        resized to ``size`` (step 2), its affinity computed once for all
        chunks (:meth:`~mmovss.models.utils.PAMR.with_guide`); None without
        PAMR."""
        if self.pamr is None:
            return None
        if image is None:
            raise ValueError('TrainingFreeHead with PAMR needs the input '
                             'image to refine the logits.')
        return self.pamr.with_guide(resize(
            image[None].to(like.device, like.dtype), size=size,
            mode='bilinear', align_corners=False, warning=False))

    def _removed_classes(self, labels: Tensor,
                         num_classes: int) -> Optional[Tensor]:
        """Step 5: (num_classes,) bool, the foreground classes whose area
        ``a_c <= area_thd * sum a`` (None without ``area_thd``)."""
        if self.area_thd is None:
            return None
        areas = torch.bincount(labels.flatten(), minlength=num_classes)
        foreground = torch.ones(num_classes, dtype=torch.bool,
                                device=areas.device)
        if self.background_index is not None:
            foreground[self.background_index] = False
        total_area = areas[foreground].sum()
        return foreground & (areas.to(torch.float64) <=
                             self.area_thd * total_area.double())

    def _background_below_prob_thd(self, best_val: Tensor,
                                   best_idx: Tensor) -> Tensor:
        """Step 6: pixels with ``max_c P_c < prob_thd`` get the background."""
        if self.prob_thd <= 0:
            return best_idx
        return torch.where(best_val < self.prob_thd,
                           best_idx.new_tensor(self.background_index),
                           best_idx)

    def predict_labels(self,
                       sims,
                       class_embeds: ClassEmbeddings,
                       size: Sequence[int],
                       image: Optional[Tensor] = None,
                       return_probs: bool = False,
                       img_meta: Optional[dict] = None):
        """Labels at the original size from name similarities (steps 2-6).

        Args:
            sims (Tensor | ClassMaps): (num_names, h, w) similarities
                ``s_n`` (window averages at the network input size), dense
                or computed a chunk of names at a time.
            class_embeds (ClassEmbeddings): The vocabulary's embeddings.
            size (Sequence[int]): The original (H, W).
            image (Tensor, optional): (3, h', w') normalised network input,
                the PAMR guidance (resized to ``size`` bilinearly); needed
                when ``pamr`` is set.
            return_probs (bool): Also return the (num_classes, H, W) class
                probabilities after the area filter.
            img_meta (dict, optional): The sample's metainfo (``img_path``),
                read by the mask generator of ``mask_refinement``.

        Returns:
            Tensor | tuple[Tensor, Tensor]: (1, H, W) int64 labels (and the
            probabilities).
        """
        sims = self._check_similarities(sims, class_embeds)
        num_classes = class_embeds.num_classes
        size = tuple(int(s) for s in size)
        chunks = self._class_chunks(class_embeds.name_to_class.tolist(),
                                    num_classes, self.class_chunk)
        if self.labels_without_softmax and self.prob_thd == 0 and \
                self.area_thd is None and self.mask_refinement is None and \
                not return_probs:
            return self._labels_without_softmax(sims, chunks, size, image)
        refine = regions = None
        if self.mask_refinement is not None:
            regions = self.mask_refinement.region_map(size, image, img_meta)
            refine = partial(self.mask_refinement.refine_similarities,
                             regions=regions)
        probs = ChunkedClassProbs(sims, chunks, size, self.logit_scale,
                                  self._pamr_refiner(image, size, sims),
                                  self.cache_elements, refine=refine)
        best_val, best_idx = probs.best_class()
        removed = self._removed_classes(best_idx, num_classes)
        if removed is not None and bool(removed.any()):
            best_val, best_idx = probs.best_class(removed)
        labels = self._background_below_prob_thd(best_val, best_idx)[None]
        if regions is not None:
            labels = self.mask_refinement.refine_labels(labels, regions)
        if not return_probs:
            return labels
        return labels, probs.all_classes(removed)

    def _labels_without_softmax(self, sims: ClassMaps, chunks, size,
                                image: Optional[Tensor]) -> Tensor:
        """Steps 1-2, 4 and 6 without the softmax of step 3.

        With no probability threshold, no area filter and no returned
        probabilities, ``argmax_c max_{n in c} softmax_n(tau s)`` equals
        ``argmax_c max_{n in c} s_n`` (the softmax is the same increasing
        map of every name's score at a pixel, ``tau > 0``), so the
        normaliser pass over all names is skipped (labels equal up to exact
        float ties).
        """
        pamr = self._pamr_refiner(image, size, sims)

        def class_scores():
            for c0, c1, bounds in chunks:
                x = resize(sims.chunk(bounds[0], bounds[-1])[None],
                           size=size, mode='bilinear', align_corners=False,
                           warning=False)
                if pamr is not None:
                    x = pamr(x)
                x = x[0]
                if bounds[-1] - bounds[0] != c1 - c0:
                    offset = bounds[0]
                    x = torch.stack([
                        x[b0 - offset:b1 - offset].amax(dim=0)
                        for b0, b1 in zip(bounds[:-1], bounds[1:])])
                yield c0, x

        return chunked_argmax(class_scores())[1][None]


class ChunkedClassProbs:
    """Steps 2-4 of :class:`TrainingFreeHead` a chunk of classes at a time.

    The softmax over all names needs their normaliser, accumulated over the
    chunks online (Milakov and Gimelshein, "Online normalizer calculation
    for softmax", 2018) as a log-sum-exp: ``log Z <- logaddexp(log Z,
    logsumexp_n z_n)`` over the chunks, so ``P_n = exp(z_n - log Z)``. The
    best class needs no probability map and no second pass: the softmax is
    increasing in ``z_n`` with one normaliser per pixel, so ``argmax_c
    max_{n in c} P_n`` is the class of the largest ``z_n`` (names are
    grouped by class in order, so the earliest such name gives the earliest
    such class, as ``argmax``) and ``max_c P_c = exp(max_n z_n - log Z)``;
    both come out of the normaliser's pass (:meth:`_first_pass`,
    :meth:`best_class`). With removed classes (the area filter) or all
    probabilities asked for, the probabilities are formed in a second pass;
    the chunks' full-size logits are kept for it while they fit in
    ``cache_elements``; the others are recomputed (with the same result).

    Args:
        sims (ClassMaps): (num_names, h, w) name similarities ``s_n``.
        chunks (list): ``(first_class, end_class, name_bounds)`` per chunk
            (:meth:`TrainingFreeHead._class_chunks`).
        size (tuple[int, int]): The original (H, W).
        logit_scale (float): ``tau``.
        pamr (callable, optional): PAMR refinement of the resized ``s``
            (:meth:`TrainingFreeHead._pamr_refiner`: the guidance bound).
        cache_elements (int): Budget of kept full-size logits (elements).
        refine (callable, optional): Applied to each chunk's (n, H, W)
            similarities after PAMR (the mask refinement's region mean).
    """

    def __init__(self, sims: ClassMaps, chunks: List[Tuple[int, int,
                                                           List[int]]],
                 size: Tuple[int, int], logit_scale: float,
                 pamr: Optional[Callable[[Tensor], Tensor]],
                 cache_elements: int,
                 refine: Optional[Callable[[Tensor], Tensor]] = None):
        self.sims, self.chunks, self.size = sims, chunks, size
        self.refine = refine
        self.logit_scale, self.pamr = logit_scale, pamr
        self.cache_elements = cache_elements
        self._cache: Dict[int, Tensor] = {}
        self._cached = 0
        self.log_total, self._best_logit, self._best_name = \
            self._first_pass()

    def scaled_logits(self, k: int) -> Tensor:
        """``tau * s_n`` of chunk ``k`` at the original size (steps 1-2)."""
        if k in self._cache:
            return self._cache[k]
        bounds = self.chunks[k][2]
        low = self.sims.chunk(bounds[0], bounds[-1])
        scale_first = self.pamr is None and self.refine is None
        if scale_first:  # tau * resize(s) = resize(tau * s), on fewer pixels
            low = low * self.logit_scale
        x = resize(low[None], size=self.size, mode='bilinear',
                   align_corners=False, warning=False)
        if self.pamr is not None:
            x = self.pamr(x)
        x = x[0]
        if self.refine is not None:
            x = self.refine(x)
        if not scale_first:
            x = x * self.logit_scale
        if self._cached + x.numel() <= self.cache_elements:
            self._cache[k] = x
            self._cached += x.numel()
        return x

    def _first_pass(self) -> Tuple[Tensor, Tensor, Tensor]:
        """Pass 1: ``log Z`` over all names and the best name per pixel.

        Per chunk, the maximum over its names ``m_k`` (and which name), and
        ``log Z_k = m_k + log sum_n exp(z_n - m_k)`` (the differences in one
        reused buffer); the chunks combine by ``logaddexp`` and a running
        maximum in which the earlier name wins ties, as ``argmax`` does.

        Returns:
            tuple[Tensor, Tensor, Tensor]: (H, W) ``log Z``, ``max_n z_n``
            and the int64 index of that name.
        """
        log_total = best = best_name = buffer = None
        for k, (_, _, bounds) in enumerate(self.chunks):
            z = self.scaled_logits(k)
            peak, name = z.max(dim=0)
            if buffer is None or buffer.shape[0] < z.shape[0]:
                buffer = torch.empty_like(z)
            diff = torch.sub(z, peak, out=buffer[:z.shape[0]])
            chunk_total = peak + diff.exp_().sum(dim=0).log_()
            name += bounds[0]
            if log_total is None:
                log_total, best, best_name = chunk_total, peak, name
                continue
            log_total = torch.logaddexp(log_total, chunk_total)
            better = peak > best
            best = torch.where(better, peak, best)
            best_name = torch.where(better, name, best_name)
        return log_total, best, best_name

    def _name_classes(self, device) -> Tensor:
        """The class index of every name, (num_names,) int64."""
        classes = []
        for c0, _, bounds in self.chunks:
            for j, (b0, b1) in enumerate(zip(bounds[:-1], bounds[1:])):
                classes += [c0 + j] * (b1 - b0)
        return torch.tensor(classes, dtype=torch.long, device=device)

    def _max_over_synonyms(self, k: int, maps: Tensor) -> Tensor:
        """Chunk ``k``'s (names, H, W) maps -> (classes, H, W) maxima."""
        c0, c1, bounds = self.chunks[k]
        if bounds[-1] - bounds[0] == c1 - c0:  # one name per class
            return maps
        offset = bounds[0]
        return torch.stack([
            maps[b0 - offset:b1 - offset].amax(dim=0)
            for b0, b1 in zip(bounds[:-1], bounds[1:])
        ])

    def class_probs(self, k: int) -> Tensor:
        """Steps 3-4 for chunk ``k``: ``P_c = max_{n in c} P_n``."""
        return self._max_over_synonyms(
            k, torch.exp(self.scaled_logits(k) - self.log_total))

    def _masked_class_probs(self, k: int,
                            removed: Optional[Tensor]) -> Tensor:
        probs = self.class_probs(k)
        if removed is None:
            return probs
        c0, c1, _ = self.chunks[k]
        return probs * (~removed[c0:c1]).to(probs)[:, None, None]

    def best_class(self, removed: Optional[Tensor] = None
                   ) -> Tuple[Tensor, Tensor]:
        """``max_c P_c`` and its class, the ``removed`` classes at 0."""
        if removed is None:  # the largest logit is the largest probability
            classes = self._name_classes(self._best_name.device)
            return (torch.exp(self._best_logit - self.log_total),
                    classes[self._best_name])
        return chunked_argmax(
            (c0, self._masked_class_probs(k, removed))
            for k, (c0, _, _) in enumerate(self.chunks))

    def all_classes(self, removed: Optional[Tensor] = None) -> Tensor:
        """(num_classes, H, W) ``P_c``, the ``removed`` classes at 0."""
        probs = torch.cat([self.class_probs(k)
                           for k in range(len(self.chunks))])
        if removed is not None:
            probs = probs * (~removed).to(probs)[:, None, None]
        return probs
